import cProfile, pstats, json, time
import pytest
from apps.sandbox.dexma.models import PlatformDatasource, PlatformDeployment

@pytest.mark.django_db
def test_prof(client):
    account = PlatformDeployment.objects.create(dep_id="acme", name="Acme")
    PlatformDatasource.objects.create(deployment=account, app_id="63", key="hub-a", name="A", timezone="Europe/Madrid", source_token="tok")
    import datetime as dt
    def body(k):
        msgs=[]
        for i in range(100):
            ts=(dt.datetime(2025,1,1,tzinfo=dt.UTC)+dt.timedelta(minutes=15*(i+100*k))).isoformat()
            for n in range(50):
                msgs.append({"did":f"d{n}","sqn":1,"ts":ts,"values":[{"p":40201,"v":1.0}]})
        return json.dumps(msgs)
    client.post("/sandbox/dexma/is3/readings?source_key=hub-a", data=body(0), content_type="application/json", HTTP_X_DEXCELL_SOURCE_TOKEN="tok")
    b=body(1)
    pr=cProfile.Profile(); pr.enable(); t=time.perf_counter()
    r=client.post("/sandbox/dexma/is3/readings?source_key=hub-a", data=b, content_type="application/json", HTTP_X_DEXCELL_SOURCE_TOKEN="tok")
    print("elapsed", time.perf_counter()-t, r.status_code)
    pr.disable(); pstats.Stats(pr).sort_stats("tottime").print_stats(15)
