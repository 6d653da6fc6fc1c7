"""The Partner API document as the suite reads it, and the check every Volue request passes."""

import json

import requests

from apps.volue import openapi
from tests.volue_contract import violation_of

API = "https://volue.test/energy-coordination/v1"


def prepared(method, path, body=None):
    return requests.Request(method, API + path, json=body,
                            headers={"Authorization": "Bearer t"}).prepare()


def test_the_quickstart_meter_update_is_outside_the_document():
    violation = violation_of(prepared("PUT", "/users/u/meters/m", {"meterPointId": "1"}), API)
    assert violation is not None and violation.status == 404


def test_a_body_field_the_document_does_not_define_is_refused():
    violation = violation_of(prepared("POST", "/users/u/vehicles",
                                      {"resourceId": "v", "resourceType": "Vehicle",
                                       "metadata": {"brand": "Tesla"}}), API)
    assert violation is not None and "metadata" in str(violation)


def test_a_documented_location_create_passes():
    body = {"locationId": "l", "locationType": "Commercial", "meterPointIds": ["7070"],
            "coordinates": {"latitude": 40.4, "longitude": -3.7}}
    assert violation_of(prepared("POST", "/users/u/locations", body), API) is None


def test_calls_to_other_hosts_are_not_volue_calls():
    assert violation_of(prepared("PUT", "/users/u/meters/m"), "https://elsewhere.test") is None


def test_the_documents_own_report_example_is_valid_as_the_hub_reads_it():
    example = openapi.document()["paths"]["/reports"]["post"]["requestBody"]["content"][
        "application/json"]["example"]
    wire = openapi.WireRequest("POST", "/reports", body=json.dumps(example).encode(),
                               headers={"Authorization": "Bearer t"})
    assert openapi.request_check(wire) is None
