"""Schemathesis against a real server, every operation of its OpenAPI document, signed in as the
administrator: no 5xx, no answer the document does not describe (status, content type, schema).

The run is bounded (MAX_EXAMPLES per operation, positive and negative cases, no shrinking). For
the generated requests to reach past "not found", the fuzzed copy of the document pins the
subscription and resource group to ones that exist and gives the other names an example that
exists (a gallery, definition, disk, ...), which the explicit phase sends first.

Request counts by status class go to FUZZ_COUNTS (and are printed with -s): the issue's closing
note reports them.
"""

from __future__ import annotations

import copy
import json
import os
from collections import Counter
from pathlib import Path

import httpx as plain_httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from . import admin_http as httpx
from .servers import SUBSCRIPTION, ThreadServer

pytestmark = pytest.mark.slow

MAX_EXAMPLES = int(os.environ.get("GALLEY_FUZZ_EXAMPLES", "25"))
# CI repeats the same cases (derandomized); GALLEY_FUZZ_RANDOM=1 explores new ones.
DERANDOMIZE = os.environ.get("GALLEY_FUZZ_RANDOM") != "1"
FUZZ_COUNTS = Path(os.environ.get("GALLEY_FUZZ_COUNTS", "/tmp/galley-fuzz-counts.json"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
GROUP = "fuzz"
# Names of things that exist on the fuzzed server, per path parameter.
EXISTING = {"resourceGroupName": GROUP, "galleryName": "g", "galleryImageName": "d",
            "galleryImageVersionName": "1.0.0", "diskName": "disk", "snapshotName": "snap", "name": "disk",
            "accountName": "fuzzacct", "account": "fuzzacct", "resourceName": "ident", "imageName": "img",
            "location": "eastus"}

COUNTS: Counter = Counter()
STATEFUL: Counter = Counter()
BY_OPERATION: dict[str, Counter] = {}


def _seed(url: str) -> None:
    base = f"{url}/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}"
    compute = base + "/providers/Microsoft.Compute"
    puts = [
        (base + "?api-version=2024-11-01", {"location": "eastus"}),
        (compute + "/galleries/g?api-version=2024-03-03", {"location": "eastus"}),
        (compute + "/galleries/g/images/d?api-version=2024-03-03", {"location": "eastus", "properties": {
            "osType": "Linux", "osState": "Generalized", "hyperVGeneration": "V2",
            "identifier": {"publisher": "p", "offer": "o", "sku": "s"}}}),
        (compute + "/disks/disk?api-version=2023-04-02", {"location": "eastus", "properties": {
            "creationData": {"createOption": "Empty"}, "diskSizeGB": 1}}),
        (base + "/providers/Microsoft.Storage/storageAccounts/fuzzacct?api-version=2023-05-01",
         {"location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}),
        (base + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ident?api-version=2023-01-31",
         {"location": "eastus"}),
    ]
    for path, body in puts:
        answer = httpx.put(path, json=body)
        assert answer.status_code in (200, 201, 202), answer.text


def _fuzzed_copy(document: dict) -> dict:
    """The document with the subscription pinned and existing names as examples."""
    document = copy.deepcopy(document)
    for operations in document["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", ()):
                if parameter["in"] != "path":
                    continue
                if parameter["name"] == "subscriptionId":
                    parameter["schema"] = {"type": "string", "enum": [SUBSCRIPTION]}
                elif parameter["name"] in EXISTING:
                    parameter["example"] = EXISTING[parameter["name"]]
    return document


@pytest.fixture(scope="module")
def fuzz_server(request, tmp_path_factory):
    # GALLEY_FUZZ_DATABASE=postgres: the same run on PostgreSQL, which refuses values SQLite takes.
    database = None
    if os.environ.get("GALLEY_FUZZ_DATABASE") == "postgres":
        database = request.getfixturevalue("postgres").create_database("galley_fuzz")
    with ThreadServer(tmp_path_factory.mktemp("fuzz"), database) as running:
        _seed(running.url)
        yield running
    summary = {"requests": sum(COUNTS.values()), "by_status_class": dict(sorted(COUNTS.items())),
               "stateful_by_status_class": dict(sorted(STATEFUL.items())),
               "operations": len(BY_OPERATION), "max_examples": MAX_EXAMPLES,
               "by_operation": {k: dict(sorted(v.items())) for k, v in sorted(BY_OPERATION.items())}}
    FUZZ_COUNTS.write_text(json.dumps(summary, indent=1))
    print(f"\nfuzz request counts by status class: {summary['by_status_class']} "
          f"({summary['requests']} requests over {summary['operations']} operations; details in {FUZZ_COUNTS})")


def _strategy(schema, operation):
    examples = schema.get_strategies_from_examples(operation)
    generated = [operation.as_strategy(generation_mode=mode) for mode in GenerationMode]
    return st.one_of(*examples, *generated)


def test_no_server_errors_and_answers_as_documented(fuzz_server):
    document = plain_httpx.get(fuzz_server.url + "/openapi.json").json()
    schema = schemathesis.openapi.from_dict(_fuzzed_copy(document))
    headers = {"Authorization": f"Bearer {httpx.token_for(fuzz_server.url)}"}
    failures = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 100

    for operation in operations:
        counts = BY_OPERATION.setdefault(f"{operation.method.upper()} {operation.path}", Counter())

        @given(case=_strategy(schema, operation))
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=DERANDOMIZE,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def fuzz(case):
            response = case.call(base_url=fuzz_server.url, headers=headers, timeout=30)
            status_class = f"{response.status_code // 100}xx"
            COUNTS[status_class] += 1
            counts[status_class] += 1
            case.validate_response(response, checks=CHECKS, headers=headers)

        try:
            fuzz()
        except (Exception, BaseExceptionGroup) as error:  # noqa: BLE001 - every operation is tried; all are reported
            failures.append(f"{operation.method.upper()} {operation.path}: {error}")
    assert not failures, f"{len(failures)} operations failed:\n" + "\n\n".join(failures)


STATEFUL_SCENARIOS = int(os.environ.get("GALLEY_FUZZ_SCENARIOS", "100"))


def _without_directory(document: dict) -> dict:
    """The stateful scenarios over ARM resources only: Galley.Identity's groups, tenants and
    principals accumulate from scenario to scenario (POST makes a new one each time), so a link
    drawn from their lists differs when Hypothesis replays a scenario (FlakyStrategyDefinition)."""
    document["paths"] = {path: operations for path, operations in document["paths"].items()
                         if not path.lower().startswith("/providers/galley.identity")}
    return document


def test_what_a_put_stores_can_be_read_updated_and_deleted(fuzz_server):
    """Schemathesis's state machine over the document's links: a PUT followed by GET, PATCH and
    DELETE of what it made (a resource stored and then unreadable would be a 5xx here)."""
    document = plain_httpx.get(fuzz_server.url + "/openapi.json").json()
    schema = schemathesis.openapi.from_dict(_without_directory(_fuzzed_copy(document)))
    headers = {"Authorization": f"Bearer {httpx.token_for(fuzz_server.url)}"}
    linked = [status for operations in document["paths"].values() if "put" in operations
              for status in operations["put"]["responses"].values() if status.get("links")]
    assert len(linked) > 20

    class Machine(schema.as_state_machine()):
        def get_call_kwargs(self, case):
            return {"base_url": fuzz_server.url, "headers": headers, "timeout": 30}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            status_class = f"{response.status_code // 100}xx"
            COUNTS[status_class] += 1
            BY_OPERATION.setdefault(f"{case.method.upper()} {case.path}", Counter())[status_class] += 1
            STATEFUL[status_class] += 1
            case.validate_response(response, checks=CHECKS, headers=headers)

    Machine.run(settings=settings(max_examples=STATEFUL_SCENARIOS, stateful_step_count=6, deadline=None,
                                  database=None, derandomize=DERANDOMIZE, phases=[Phase.explicit, Phase.generate],
                                  suppress_health_check=list(HealthCheck)))
    assert STATEFUL["2xx"] > 0  # some scenarios got past the first request
