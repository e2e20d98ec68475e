"""Bad input finds no 500: schemathesis generates requests from the app's own OpenAPI spec and sends
them to a real server (`assistant serve`, real model and index). Every answer must be below 500,
except a deliberate 503 with Retry-After (the turn queue is full), and every 4xx is JSON. Valid and
invalid requests for every operation; bounded to about a minute or two."""

from __future__ import annotations

import itertools

import pytest

from conftest_web import STAFF_KEY, new_session, prepared_data_dir, running_server

schemathesis = pytest.importorskip("schemathesis", reason="pip install schemathesis (the test extra)")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

pytestmark = pytest.mark.slow
EXAMPLES_PER_OPERATION = 25
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]  # valid requests, then invalid ones
STAFF_PATHS = ("/api/marketing", "/api/compliance", "/api/qa")


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_cache):
    data = prepared_data_dir(tmp_path_factory, model_cache, "fuzz")
    # Short answers keep generated turns quick; high limits keep the fuzzer past 429s into the handlers.
    with running_server(data, staff_api_keys=[STAFF_KEY], web_requests_per_minute=100000,
                        web_sessions_per_minute=100000, llm_max_new_tokens=24) as srv:
        yield srv


@pytest.fixture(scope="module")
def customer(server):
    return new_session(server.url)


def test_no_server_errors(server, customer):
    """Each operation of the spec gets a few generated requests (schemathesis strategies driven by
    hypothesis directly: its pytest plugin does not run under this pytest)."""
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for operation, mode in itertools.product(operations, MODES):
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
        def check(case):
            failure = call(case, customer, server.url)
            if failure:
                failures.append(failure)

        try:
            check()
        except Unsatisfiable:  # nothing invalid to send (an operation without parameters or body)
            assert mode == GenerationMode.NEGATIVE
    assert not failures, "\n".join(failures[:20])


def call(case, customer: dict, base_url: str) -> str | None:
    staff = case.path.startswith(STAFF_PATHS) or case.method.upper() == "PATCH"
    token = STAFF_KEY if staff else customer["customer_token"]
    if case.path == "/api/chat" and isinstance(case.body, dict):
        case.body["stream"] = False  # the streamed variant is the same handler; keep each call short
    response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=120)
    where = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
    headers = {k.lower(): v[0] if isinstance(v, list) else v for k, v in response.headers.items()}
    deliberate = response.status_code == 503 and "retry-after" in headers
    if response.status_code >= 500 and not deliberate:
        return where
    if response.status_code >= 400 and not headers.get("content-type", "").startswith("application/json"):
        return "not JSON: " + where
    return None
