"""The shared model's natural keys and constraints hold at the database level."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from apps.core.models import Datasource, Device, Parameter, Reading, Site

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def _insert_reading(device, parameter, **overrides):
    fields = {"device": device, "parameter": parameter, "ts": T0, "value": 1.0, "seq": 1}
    fields.update(overrides)
    with transaction.atomic():
        Reading.objects.create(**fields)


def test_site_external_id_is_unique_within_a_deployment(deployment):
    Site.objects.create(deployment=deployment, external_id="b1", name="B1")
    with pytest.raises(IntegrityError), transaction.atomic():
        Site.objects.create(deployment=deployment, external_id="b1", name="again")


def test_same_site_external_id_is_allowed_in_another_deployment(deployment, other_deployment):
    Site.objects.create(deployment=deployment, external_id="b1", name="B1")
    Site.objects.create(deployment=other_deployment, external_id="b1", name="B1")
    assert Site.objects.filter(external_id="b1").count() == 2


def test_datasource_key_is_unique_within_a_deployment(deployment):
    Datasource.objects.create(deployment=deployment, key="gw", name="GW")
    with pytest.raises(IntegrityError), transaction.atomic():
        Datasource.objects.create(deployment=deployment, key="gw", name="GW 2")


def test_device_external_id_is_unique_within_a_deployment(deployment, make_device):
    make_device(deployment, "m1", local_id="a")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_device(deployment, "m1", local_id="b")


def test_device_local_id_is_unique_within_a_datasource(deployment, make_device):
    make_device(deployment, "m1", local_id="did-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_device(deployment, "m2", local_id="did-1")


def test_device_local_id_longer_than_25_characters_is_refused(deployment, make_device):
    with pytest.raises(Exception) as excinfo, transaction.atomic():
        make_device(deployment, "m1", local_id="x" * 26)
    assert "too long" in str(excinfo.value) or isinstance(excinfo.value, IntegrityError)


def test_device_under_another_deployments_datasource_is_refused_by_the_database(
    deployment, other_deployment
):
    theirs = Datasource.objects.create(deployment=other_deployment, key="gw", name="GW")
    with pytest.raises(IntegrityError), transaction.atomic():
        Device.objects.create(deployment=deployment, datasource=theirs, external_id="m",
                              local_id="m", name="m", commodity="energy", unit="kWh")
        connection.check_constraints()


def test_device_clean_names_the_cross_tenant_datasource(deployment, other_deployment):
    theirs = Datasource.objects.create(deployment=other_deployment, key="gw", name="GW")
    device = Device(deployment=deployment, datasource=theirs, external_id="m", local_id="m",
                    name="m", commodity="energy", unit="kWh")
    with pytest.raises(ValidationError, match="another deployment"):
        device.full_clean()


def test_device_subtype_must_belong_to_its_commodity(deployment, make_device):
    device = make_device(deployment, "m1", commodity="water", subtype="Natural Gas")
    with pytest.raises(ValidationError, match="not a water subtype"):
        device.full_clean()


def test_unknown_commodity_is_refused_by_the_database(deployment, make_device):
    with pytest.raises(IntegrityError), transaction.atomic():
        make_device(deployment, "m1", commodity="plutonium")


def test_reading_natural_key_is_unique(deployment, make_device):
    device = make_device(deployment)
    energy = Parameter.objects.get(key="active_energy")
    _insert_reading(device, energy)
    with pytest.raises(IntegrityError):
        _insert_reading(device, energy, seq=2)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_reading_value_must_be_finite_in_the_database(deployment, make_device, value):
    device = make_device(deployment)
    with pytest.raises(IntegrityError):
        _insert_reading(device, Parameter.objects.get(key="active_energy"), value=value)


def test_reading_period_must_end_after_it_starts(deployment, make_device):
    device = make_device(deployment)
    with pytest.raises(IntegrityError):
        _insert_reading(device, Parameter.objects.get(key="active_energy_delta"), period_end=T0)


def test_reading_cost_needs_a_currency(deployment, make_device):
    device = make_device(deployment)
    with pytest.raises(IntegrityError):
        _insert_reading(device, Parameter.objects.get(key="active_energy"), cost=3.2)


def test_parameter_catalogue_carries_every_dexma_base_code():
    codes = set(Parameter.objects.values_list("dexma_code", flat=True))
    expected = {301, 302, 303, 306, 307, 308, 309, 401, 402, 403, 404, 405, 406, 407, 408, 409,
                410, 411, 412, 413, 414, 419, 420, 422, 423, 426, 432, 433, 452, 454, 458, 501,
                502, 503, 701, 801, 802, 803, 804, 805, 806, 807, 808, 809, 901, 902}
    assert codes == expected


def test_accumulated_parameters_come_as_index_and_interval_delta():
    energy = Parameter.objects.filter(dexma_code=402)
    assert {(p.kind, p.operation) for p in energy} == {("cumulative", ""), ("interval", "delta")}
    assert {p.unit for p in energy} == {"kWh"}


def test_instantaneous_parameters_come_as_point_and_interval_avg_max_min():
    power = Parameter.objects.filter(dexma_code=401)
    assert {(p.kind, p.operation) for p in power} == {
        ("instantaneous", ""), ("interval", "avg"), ("interval", "max"), ("interval", "min")}
    assert {p.unit for p in power} == {"W"}


def test_delta_operation_is_refused_for_an_instantaneous_parameter():
    with pytest.raises(IntegrityError), transaction.atomic():
        Parameter.objects.create(key="odd", name="odd", kind="interval", nature="instantaneous",
                                 operation="delta", dexma_code=999)
