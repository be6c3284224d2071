"""schemathesis against the OpenAPI schema: whatever the schema allows a client to send, with any
role's token or none, the service answers without a server error (no 5xx)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from support import Service

pytestmark = pytest.mark.slow  # the API fuzzed from its OpenAPI schema

ROLES = ("requester", "officer", "court", "auditor", "admin", None)


def test_no_server_errors_anywhere_in_the_schema(store, world, small_batch, tmp_path):
    service = Service(store, world, tmp_path, uploads_per_minute=10_000)
    service.submit(small_batch)
    service.run_queued()  # a batch, decisions, reviews and ledger entries for the calls to find
    schema = schemathesis.openapi.from_asgi("/openapi.json", service.app)
    tried = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def calls(case):
            for role in ROLES:
                case.call_and_validate(
                    headers=service.auth(role) if role else {}, checks=[not_a_server_error]
                )

        calls()
        tried.append(operation.label)
    assert len(tried) == len(
        {(m, p) for p, ops in service.app.openapi()["paths"].items() for m in ops}
    )
