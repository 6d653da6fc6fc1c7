import datetime as dt

import pytest

from apps.core.services import ReadingIn, readings_ingest

URL = "https://collector.test/measurements/v2/unifiedjson/"
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
Q = dt.timedelta(minutes=15)


@pytest.fixture(autouse=True)
def _wattics_settings(settings):
    settings.WATTICS_API_URL = URL
    settings.WATTICS_SEND_RETRIES = 1
    settings.WATTICS_RETRY_BACKOFF = 0.0
    settings.WATTICS_BATCH_PACKETS = 3


@pytest.fixture
def account(deployment):
    from apps.wattics.models import WatticsAccount

    return WatticsAccount.objects.create(name="Acme", username="acme", password="s3cret",
                                         deployment=deployment)


@pytest.fixture
def make_stream(make_device):
    from apps.wattics.services import stream_create

    def make(deployment, meter_id="wm-1", external_id=None, kind="single",
             channels=None, **extra):
        device = make_device(deployment, external_id or f"dev-{meter_id}")
        if kind == "single" and channels is None:
            channels = {"value": "temperature"}
        extra.setdefault("timezone", "Europe/Madrid")
        return stream_create(device=device, meter_id=meter_id, kind=kind, channels=channels,
                             **extra)

    return make


def ingest(deployment, device, parameter, values, start=T0, step=Q):
    """Readings `values` at start, start+step, … (None skips a slot)."""
    records = [ReadingIn(device=device.external_id, parameter=parameter, ts=start + i * step,
                         value=v) for i, v in enumerate(values) if v is not None]
    result = readings_ingest(deployment=deployment, records=records, source="test")
    assert not result.rejections, result.rejections
    return result
