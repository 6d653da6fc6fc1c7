"""Connection and endpoint validation: clear errors in the admin."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.pull.models import Connection, Endpoint


@pytest.fixture
def connection(deployment):
    return Connection(deployment=deployment, name="P", key="p",
                      staging_url="https://p.example/", auth_kind="none")


def _errors(obj) -> dict:
    with pytest.raises(ValidationError) as info:
        obj.full_clean()
    return info.value.message_dict


def test_the_active_environment_needs_its_base_url(connection):
    connection.environment = "production"
    assert "production_url" in _errors(connection)


def test_each_auth_kind_names_the_credentials_it_is_missing(connection):
    connection.auth_kind = Connection.AuthKind.PASSWORD
    errors = _errors(connection)
    assert {"token_url", "client_id", "client_secret", "username", "password"} <= set(errors)


def test_retry_after_cap_must_cover_the_quota_window(connection):
    connection.quota_window_seconds, connection.retry_after_cap_seconds = 3600, 60
    assert "at least the quota window" in _errors(connection)["retry_after_cap_seconds"][0]


def test_type_map_refuses_categories_scaler_does_not_have(connection):
    connection.type_map = {"elec": "energy/Nuclear"}
    assert "is not a energy subtype" in _errors(connection)["type_map"][0]


def test_parameter_maps_need_the_right_kind_of_parameter(connection):
    connection.consumption_parameters = {"energy": "active_energy"}
    assert "need a interval parameter" in _errors(connection)["consumption_parameters"][0]


def test_date_format_needs_a_directive(connection):
    connection.date_format = "from"
    assert "no % directive" in _errors(connection)["date_format"][0]


def test_endpoint_lists_the_fields_its_role_requires(connection):
    connection.save()
    endpoint = Endpoint(connection=connection, role="consumption", path="usage",
                        fields={"meter_id": "m"})
    assert "needs a path for: start, end, value" in _errors(endpoint)["fields"][0]


def test_endpoint_refuses_fields_its_role_does_not_map(connection):
    connection.save()
    endpoint = Endpoint(connection=connection, role="meters", path="m",
                        fields={"external_id": "id", "type": "t", "unit": "u", "colour": "c"})
    assert "unknown field(s) colour" in _errors(endpoint)["fields"][0]


def test_endpoint_refuses_a_path_that_is_neither_dotted_nor_jsonpath(connection):
    connection.save()
    endpoint = Endpoint(connection=connection, role="meters", path="m",
                        fields={"external_id": "id", "type": "a..b", "unit": "u"})
    assert "'type': 'a..b' is not a dotted path" in _errors(endpoint)["fields"][0]
