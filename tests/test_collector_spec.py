"""The collector against Mixpanel's published ingestion OpenAPI spec (tests/data copy, MIT).

Every request example the spec gives and a schema-valid instance of every
request schema is accepted; the collector's /import answers for 200, 400,
401, 413 and 429 validate against the spec's response schemas.
"""

from __future__ import annotations

import base64
import copy
import json
import time
from pathlib import Path

import jsonschema
import pytest
import requests
import yaml

SPEC_PATH = Path(__file__).parent / "data" / "mixpanel-ingestion.openapi.yaml"
SPEC = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))

# The spec's one known slip: group-union and group-delete require "$unset" / "$set";
# the operation's own key is meant.
SLIPS = {"group-union": ("$unset", "$union"), "delete-group": ("$set", "$delete")}

# A value for each property the generated instances fill in.
SAMPLES = {
    "$set": {"plan": "pro"},
    "$set_once": {"first_seen": "2024-01-01T00:00:00"},
    "$add": {"logins": 1},
    "$append": {"pages": "home"},
    "$union": {"tags": ["a", 1]},
    "$remove": {"tags": "a"},
    "$unset": ["plan"],
    "$delete": "",
}


def operations(path_prefix: str):
    for path, item in SPEC["paths"].items():
        if path.split("#")[0] == path_prefix:
            for method, op in item.items():
                yield path, method, op


def body_schema(op) -> dict:
    schema = copy.deepcopy(op["requestBody"]["content"]["application/json"]["schema"])
    slip = SLIPS.get(op["operationId"])
    if slip is not None:
        wrong, right = slip
        required = schema["items"]["required"]
        required[required.index(wrong)] = right
    return schema


def instance(schema: dict, now_ms: int) -> dict:
    """A minimal valid instance of an array item schema, with realistic values."""
    item = schema["items"]
    out = {}
    for name in item.get("required", []):
        prop = item.get("properties", {}).get(name, {})
        if name in SAMPLES:
            out[name] = SAMPLES[name]
        elif name == "properties":
            out[name] = {
                key: {"time": now_ms, "distinct_id": "user-1", "$insert_id": "spec-0001",
                      "token": "YOUR_PROJECT_TOKEN"}[key]
                for key in ["time", "distinct_id", "$insert_id", "token"]
            }
        elif "default" in prop:
            out[name] = prop["default"]
        else:
            out[name] = "Signed up"
    return out


SCHEMA_CASES = [
    (path, op["operationId"])
    for prefix in ("/track", "/import", "/engage", "/groups")
    for path, _, op in operations(prefix)
    if op["requestBody"]["content"]["application/json"]["schema"].get("type") == "array"
]
EXAMPLE_CASES = [
    (path, op["operationId"])
    for prefix in ("/engage", "/groups")
    for path, _, op in operations(prefix)
    if op["requestBody"]["content"]["application/json"]["schema"].get("type") == "string"
]


def find_op(operation_id: str):
    for item in SPEC["paths"].values():
        for op in item.values():
            if op.get("operationId") == operation_id:
                return op
    raise KeyError(operation_id)


def post(collector, path: str, batch) -> requests.Response:
    endpoint = path.split("#")[0]
    if endpoint == "/import":
        return requests.post(collector.url + "/import", params={"strict": 1, "project_id": "1"},
                             auth=("sa", "secret"), json=batch, timeout=30)
    data = base64.b64encode(json.dumps(batch).encode()).decode()
    return requests.post(collector.url + endpoint, params={"verbose": 1}, data={"data": data},
                         timeout=30)


def test_spec_lists_the_operations_the_collector_serves():
    ids = {op for _, op in SCHEMA_CASES + EXAMPLE_CASES}
    assert {"import-events", "track-event", "profile-set", "profile-numerical-add",
            "user-profile-union", "delete-profile", "group-set-property", "group-union",
            "delete-group", "profile-batch-update", "group-batch-update"} <= ids


@pytest.mark.parametrize("path, operation_id", SCHEMA_CASES, ids=[c[1] for c in SCHEMA_CASES])
def test_schema_valid_requests_are_accepted(collector, path, operation_id):
    schema = body_schema(find_op(operation_id))
    batch = [instance(schema, int(time.time() * 1000))]
    jsonschema.validate(batch, schema)  # the instance really is what the spec describes
    r = post(collector, path, batch)
    assert r.status_code == 200, r.text
    if path == "/import":
        assert r.json()["num_records_imported"] == 1
    else:
        assert r.json() == {"status": 1, "error": None}
    assert collector.stats()["rejected"] == 0


@pytest.mark.parametrize("path, operation_id", EXAMPLE_CASES, ids=[c[1] for c in EXAMPLE_CASES])
def test_spec_batch_examples_are_accepted(collector, path, operation_id):
    example = json.loads(
        find_op(operation_id)["requestBody"]["content"]["application/json"]["schema"]["default"]
    )
    r = post(collector, path, example)
    assert r.json() == {"status": 1, "error": None}
    assert collector.messages(path.split("#")[0].strip("/")) == example


def response_schema(status: str) -> dict:
    ref = SPEC["paths"]["/import"]["post"]["responses"][status]["$ref"].split("/")[-1]
    return SPEC["components"]["responses"][ref]["content"]["application/json"]["schema"]


def test_import_responses_validate_against_the_spec(collector):
    now = int(time.time() * 1000)
    good = {"event": "e", "properties": {"time": now, "distinct_id": "u", "$insert_id": "a-1"}}
    bad = {"event": "e", "properties": {"distinct_id": "u", "$insert_id": "a-2"}}
    url = collector.url + "/import"
    params = {"strict": 1, "project_id": "1"}
    with requests.Session() as s:
        answers = {
            "200": s.post(url, params=params, auth=("sa", "x"), json=[good]),
            "400": s.post(url, params=params, auth=("sa", "x"), json=[good, bad]),
            "401": s.post(url, params=params, json=[good]),
            "413": s.post(url, params=params, auth=("sa", "x"),
                          data=b"[" + b" " * (10 * 1024 * 1024) + b"]"),
        }
        collector.fail_next(1, 429)
        answers["429"] = s.post(url, params=params, auth=("sa", "x"), json=[good])
    for status, response in answers.items():
        assert response.status_code == int(status)
        body = response.json()
        jsonschema.validate(body, response_schema(status))
        assert body["code"] == int(status)
    example = response_schema("400")["example"]
    assert set(answers["400"].json()) >= set(example)
    record_keys = set(example["failed_records"][0])
    assert set(answers["400"].json()["failed_records"][0]) == record_keys


def test_track_answers_match_the_received_schema(collector):
    schema = SPEC["components"]["responses"]["Received"]["content"]["text/plain"]["schema"]
    valid = [{"event": "e", "properties": {"token": "t"}}]
    ok = requests.post(collector.url + "/track", json=valid, timeout=30)
    refused = requests.post(collector.url + "/track", json=[{"event": "e"}], timeout=30)
    for r in (ok, refused):
        jsonschema.validate(int(r.text), schema)
    assert (ok.text, refused.text) == ("1", "0")
