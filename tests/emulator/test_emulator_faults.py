"""Injected faults against the real SDK's retry logic, and request accounting."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import InternalError, PermissionDenied, ResourceAlreadyExists
from databricks.sdk.service.workspace import AclPermission

from reconciler.emulator import (
    ApiError,
    Dropped,
    EmulatorHandle,
    Faults,
    InProcessEmulator,
    OneShotFailure,
)
from reconciler.emulator.faults import FaultInjector

MakeClient = Callable[..., WorkspaceClient]
SCOPE = "databricks-package-management"
LIST = ("GET", "/api/2.0/secrets/scopes/list")
CREATE = ("POST", "/api/2.0/secrets/scopes/create")


def test_throttling_is_recovered_by_the_sdk_retry(
    emulator: EmulatorHandle, make_client: MakeClient
) -> None:
    client = make_client(retry_timeout_seconds=20)
    # Retry-After: 0 keeps the test fast: the SDK then sleeps 0..1 s (its own jitter).
    emulator.set_faults("ws1", Faults(rate_limit_rps=4, rate_limit_burst=1, retry_after_seconds=0))
    for i in range(3):  # back to back: the bucket holds one token
        client.secrets.create_scope(f"scope-{i}")
    assert len(list(client.secrets.list_scopes())) == 3
    answers = emulator.responses("ws1")
    assert answers[(*CREATE, 429)] >= 1, "some calls were throttled"
    assert answers[(*CREATE, 200)] == 3


def test_throttled_answer_has_retry_after_and_error_json(emulator: EmulatorHandle) -> None:
    emulator.set_faults("ws1", Faults(rate_limit_rps=0.5, rate_limit_burst=1))
    conn = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=5)
    headers = {"Authorization": "Bearer dapi-emulator-admin"}
    statuses = []
    for _ in range(2):
        conn.request("GET", "/ws1/api/2.0/secrets/scopes/list", headers=headers)
        response = conn.getresponse()
        statuses.append((response.status, response.getheader("Retry-After"), response.read()))
    assert statuses[0][0] == 200
    status, retry_after, body = statuses[1]
    assert (status, retry_after) == (429, "2")  # a token every 2 s, in whole seconds
    assert json.loads(body)["error_code"] == "REQUEST_LIMIT_EXCEEDED"


def test_503_is_retried_by_the_sdk(emulator: EmulatorHandle, make_client: MakeClient) -> None:
    client = make_client(retry_timeout_seconds=20)
    emulator.set_faults(
        "ws1", Faults(one_shot=(OneShotFailure("secrets/scopes/create", status=503),))
    )
    client.secrets.create_scope(SCOPE)
    answers = emulator.responses("ws1")
    assert answers[(*CREATE, 503)] == 1 and answers[(*CREATE, 200)] == 1


def test_500_is_not_retried_by_the_sdk(emulator: EmulatorHandle, make_client: MakeClient) -> None:
    client = make_client(retry_timeout_seconds=5)
    emulator.set_faults("ws1", Faults(error_rate=1.0, error_statuses=(500,)))
    with pytest.raises(InternalError):
        list(client.secrets.list_scopes())
    assert emulator.responses("ws1")[(*LIST, 500)] == 1


def test_random_5xx_share_is_seeded_and_reproducible() -> None:
    def draws(seed: int) -> list[int]:
        injector = FaultInjector(Faults(error_rate=0.3, seed=seed))
        outcomes = [injector.decide("secrets/list").error for _ in range(200)]
        return [e.status if e else 200 for e in outcomes]

    first = draws(7)
    assert first == draws(7)
    failures = sum(status != 200 for status in first)
    assert 35 <= failures <= 85, "about 30 % of 200"
    assert {s for s in first if s != 200} == {500, 503}


def test_one_shot_fails_the_nth_call_once(
    emulator: EmulatorHandle, make_client: MakeClient
) -> None:
    client = make_client(retry_timeout_seconds=1)
    client.secrets.create_scope(SCOPE)
    emulator.set_faults(
        "ws1",
        Faults(one_shot=(OneShotFailure("/api/2.0/secrets/acls/put", nth=2, status=500),)),
    )
    client.secrets.put_acl(SCOPE, "users", AclPermission.READ)
    with pytest.raises(InternalError):
        client.secrets.put_acl(SCOPE, "admins", AclPermission.MANAGE)
    client.secrets.put_acl(SCOPE, "admins", AclPermission.MANAGE)  # once only
    assert {a.principal for a in client.secrets.list_acls(SCOPE)} == {
        "admin@pkgrepo.local",
        "users",
        "admins",
    }


def test_after_commit_failure_applies_the_write_then_fails(
    emulator: EmulatorHandle, make_client: MakeClient
) -> None:
    client = make_client(retry_timeout_seconds=20)
    emulator.set_faults(
        "ws1",
        Faults(one_shot=(OneShotFailure("secrets/scopes/create", status=503, after_commit=True),)),
    )
    # The SDK retries the 503 and finds the scope already made by the first attempt: the
    # situation an idempotent apply has to treat as done.
    with pytest.raises(ResourceAlreadyExists):
        client.secrets.create_scope(SCOPE)
    assert [s.name for s in client.secrets.list_scopes()] == [SCOPE]


def test_dropped_connection_once_is_retried_by_the_sdk(
    emulator: EmulatorHandle, make_client: MakeClient
) -> None:
    client = make_client(retry_timeout_seconds=20)
    emulator.set_faults(
        "ws1", Faults(one_shot=(OneShotFailure("secrets/scopes/list", status=None),))
    )
    assert list(client.secrets.list_scopes()) == []
    answers = emulator.responses("ws1")
    assert answers[(*LIST, 0)] == 1 and answers[(*LIST, 200)] == 1


def test_always_dropped_connections_end_in_a_timeout(
    emulator: EmulatorHandle, make_client: MakeClient
) -> None:
    import requests

    client = make_client(retry_timeout_seconds=1)
    emulator.set_faults("ws1", Faults(drop_rate=1.0))
    with pytest.raises(TimeoutError) as timed_out:
        list(client.secrets.list_scopes())
    assert isinstance(timed_out.value.__cause__, requests.ConnectionError)
    assert emulator.responses("ws1")[(*LIST, 0)] >= 1


def test_faults_never_touch_the_host_metadata_probe(
    emulator: EmulatorHandle, make_client: MakeClient
) -> None:
    emulator.set_faults("ws1", Faults(drop_rate=1.0, error_rate=1.0))
    client = make_client(retry_timeout_seconds=1)
    assert client.config.workspace_id == emulator.workspace_id("ws1")


def test_latency_is_added_per_request(emulator: EmulatorHandle, make_client: MakeClient) -> None:
    client = make_client()
    emulator.set_faults("ws1", Faults(latency_ms=150))
    started = time.perf_counter()
    list(client.secrets.list_scopes())
    assert time.perf_counter() - started >= 0.15
    injector = FaultInjector(Faults(latency_range_ms=(10, 20), seed=3))
    delays = [injector.decide("x").delay for _ in range(50)]
    assert all(0.010 <= d <= 0.020 for d in delays) and len(set(delays)) > 1


def test_late_acls_are_acknowledged_but_show_later(
    emulator: EmulatorHandle, make_client: MakeClient
) -> None:
    admin = make_client()
    admin.secrets.create_scope(SCOPE)
    emulator.set_faults("ws1", Faults(late_acl_seconds=0.4))
    admin.secrets.put_acl(SCOPE, "bob@example.com", AclPermission.READ)
    assert {a.principal for a in admin.secrets.list_acls(SCOPE)} == {"admin@pkgrepo.local"}
    bob = make_client(token="dapi-bob")
    with pytest.raises(PermissionDenied, match="does not have READ"):
        bob.secrets.list_secrets(SCOPE)
    time.sleep(0.45)
    assert admin.secrets.get_acl(SCOPE, "bob@example.com").permission == AclPermission.READ
    assert list(bob.secrets.list_secrets(SCOPE)) == []


def test_request_accounting_and_reset(emulator: EmulatorHandle, make_client: MakeClient) -> None:
    client = make_client()
    emulator.reset_counts()
    client.secrets.create_scope(SCOPE)
    for _ in range(3):
        list(client.secrets.list_secrets(SCOPE))
    list(client.secrets.list_acls(SCOPE))
    counts = emulator.requests("ws1")
    assert counts == {
        CREATE: 1,
        ("GET", "/api/2.0/secrets/list"): 3,
        ("GET", "/api/2.0/secrets/acls/list"): 1,
    }
    writes = sum(n for (method, _path), n in counts.items() if method == "POST")
    assert writes == 1
    assert emulator.requests("other") == {}
    emulator.reset_counts("ws1")
    assert emulator.requests("ws1") == {}


def test_invalid_fault_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="error_rate"):
        Faults(error_rate=1.5)
    with pytest.raises(ValueError, match="nth"):
        OneShotFailure("secrets/put", nth=0)
    with pytest.raises(ValueError, match="unknown"):
        Faults.from_dict({"latency": 5})
    parsed = Faults.from_dict(
        {"latency_range_ms": [1, 2], "one_shot": [{"endpoint": "secrets/put", "status": None}]}
    )
    assert parsed.latency_range_ms == (1.0, 2.0)
    assert parsed.one_shot == (OneShotFailure("secrets/put", status=None),)


def test_an_after_commit_shot_waits_for_a_call_that_is_served() -> None:
    now = [0.0]
    injector = FaultInjector(
        Faults(
            rate_limit_rps=1,
            rate_limit_burst=1,
            one_shot=(OneShotFailure("secrets/put", nth=2, after_commit=True),),
        ),
        clock=lambda: now[0],
    )
    first = injector.decide("secrets/put")
    assert first.error is None and first.after_commit is None  # uses the only token
    throttled = injector.decide("secrets/put")  # the 2nd call, but throttled
    assert throttled.error is not None and throttled.error.status == 429
    assert throttled.after_commit is None
    now[0] += 5
    served = injector.decide("secrets/put")
    assert served.error is None and served.after_commit is not None
    now[0] += 5
    assert injector.decide("secrets/put").after_commit is None, "once only"


def test_in_process_calls_meet_the_workspace_faults_as_requests_do() -> None:
    service = InProcessEmulator()
    backend = service.backend("ws1")
    admin = service.principals()[0]
    service.set_faults(
        "ws1",
        Faults(
            one_shot=(
                OneShotFailure("secrets/scopes/create", nth=1, status=503),
                OneShotFailure("secrets/scopes/create", nth=2, status=None),
                OneShotFailure("secrets/scopes/create", nth=3, after_commit=True),
                OneShotFailure("secrets/scopes/create", nth=4, status=None, after_commit=True),
            )
        ),
    )

    def create(name: str) -> Callable[[], None]:
        return lambda: backend.create_scope(admin, name)

    with pytest.raises(ApiError) as refused:
        service.call("ws1", "secrets/scopes/create", create("first"))
    assert refused.value.status == 503
    with pytest.raises(Dropped):
        service.call("ws1", "secrets/scopes/create", create("second"))
    with pytest.raises(ApiError):  # the answer is lost, the change is made
        service.call("ws1", "secrets/scopes/create", create("third"))
    with pytest.raises(Dropped):
        service.call("ws1", "secrets/scopes/create", create("fourth"))
    service.call("ws1", "secrets/scopes/create", create("fifth"))
    assert {s.name for s in backend.list_scopes(admin)} == {"third", "fourth", "fifth"}
