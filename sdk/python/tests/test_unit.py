"""Unit tests of the client's own logic against a scripted local HTTP server (tests/fakebroker.py):
retries and backoff, Retry-After, what is never repeated, error mapping, connection failures,
configuration. The behaviour against the real broker is in test_live.py."""

from __future__ import annotations

import inspect
import logging
import time

import anyio
import pytest

import kubeline
from kubeline import _base
from fakebroker import CLUSTERS, FakeBroker, Reply, SilentServer, error, result


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_base, "INITIAL_BACKOFF", 0.01)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- retries -------------------------------------------------------------------------------------


def test_429_waits_retry_after_then_succeeds() -> None:
    with FakeBroker() as fb:
        fb.script(error(429, "rate_limited", "Rate limit exceeded", {"limit": 1, "retry_after": 1}, {"Retry-After": "1"}), Reply(200, CLUSTERS))
        client = kubeline.Client(fb.url, "k")
        clusters = client.list_clusters()
        assert clusters.clusters[0].cluster_id == "c1"
        assert len(fb.seen) == 2
        waited = fb.seen[1].at - fb.seen[0].at
        assert 1.0 <= waited < 2.0, waited
        # The same request, sent again: same correlation id.
        assert fb.seen[0].headers["x-correlation-id"] == fb.seen[1].headers["x-correlation-id"]


def test_429_with_max_retries_0_raises_rate_limited_with_retry_after() -> None:
    with FakeBroker() as fb:
        fb.script(
            error(429, "rate_limited", "Rate limit exceeded", {"limit": 50, "retry_after": 7, "window": "1m"},
                  {"Retry-After": "7", "X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1800000000"})
        )
        client = kubeline.Client(fb.url, "k", max_retries=0)
        with pytest.raises(kubeline.RateLimitedError) as info:
            client.list_clusters()
        err = info.value
        assert (err.status, err.code, err.retry_after) == (429, "rate_limited", 7.0)
        assert (err.limit, err.remaining, err.reset) == (50, 0, 1800000000)
        assert len(fb.seen) == 1


def test_retry_after_longer_than_the_cap_is_raised_at_once() -> None:
    with FakeBroker() as fb:
        fb.script(error(429, "rate_limited", "slow down", {"retry_after": 120}, {"Retry-After": "120"}))
        client = kubeline.Client(fb.url, "k", max_retry_after=5)
        started = time.monotonic()
        with pytest.raises(kubeline.RateLimitedError) as info:
            client.list_clusters()
        assert info.value.retry_after == 120
        assert time.monotonic() - started < 1
        assert len(fb.seen) == 1


def test_503_backs_off_and_gives_up_after_max_retries(caplog: pytest.LogCaptureFixture) -> None:
    with FakeBroker() as fb:
        for _ in range(3):
            fb.script(error(503, "service_unavailable", "The broker's store is unavailable; retry shortly", {"reason": "x"}))
        client = kubeline.Client(fb.url, "k", max_retries=2)
        with caplog.at_level(logging.INFO, logger="kubeline"), pytest.raises(kubeline.ServiceUnavailableError):
            client.cluster_status("c1")
        assert len(fb.seen) == 3
        assert sum("retrying GET" in r.getMessage() for r in caplog.records) == 2


def test_503_then_success() -> None:
    with FakeBroker() as fb:
        fb.script(error(503, "service_unavailable", "down"), Reply(200, CLUSTERS))
        assert kubeline.Client(fb.url, "k").list_clusters().clusters
        assert len(fb.seen) == 2


def test_backoff_grows_and_is_capped_with_jitter() -> None:
    for attempt in range(10):
        expected = min(_base.INITIAL_BACKOFF * 2**attempt, _base.MAX_BACKOFF)
        for _ in range(20):
            delay = _base.backoff(attempt)
            assert expected * 0.75 <= delay <= expected


def test_other_errors_are_not_retried() -> None:
    with FakeBroker() as fb:
        fb.script(error(500, "internal_error", "An unexpected error occurred", {"request_id": "req_abc"}))
        with pytest.raises(kubeline.InternalServerError) as info:
            kubeline.Client(fb.url, "k").list_clusters()
        assert info.value.request_id == "req_abc"
        assert len(fb.seen) == 1


# --- execute is never repeated once sent ---------------------------------------------------------


def test_execute_is_not_resent_when_the_connection_drops_after_sending() -> None:
    with FakeBroker() as fb:
        fb.default = Reply(close=True)
        client = kubeline.Client(fb.url, "k", max_retries=3)
        with pytest.raises(kubeline.KubelineConnectionError) as info:
            client.execute("c1", "sess_1", "get", ["pods"])
        err = info.value
        assert len(fb.seen) == 1
        assert err.request_sent is True
        assert "may have run" in str(err)
        assert err.correlation_id and err.correlation_id in str(err)
        assert "Traceback" not in str(err)


def test_get_is_resent_when_the_connection_drops() -> None:
    with FakeBroker() as fb:
        fb.script(Reply(close=True), Reply(200, CLUSTERS))
        assert kubeline.Client(fb.url, "k").list_clusters().clusters
        assert len(fb.seen) == 2


def test_execute_503_after_queueing_is_not_retried() -> None:
    with FakeBroker() as fb:
        fb.default = error(503, "service_unavailable", "agent link lost", {"result_id": "res_9", "cluster_id": "c1"})
        with pytest.raises(kubeline.ServiceUnavailableError):
            kubeline.Client(fb.url, "k").execute("c1", "sess_1", "get", ["pods"])
        assert len(fb.seen) == 1


def test_execute_503_queue_full_is_retried_after_retry_after() -> None:
    with FakeBroker() as fb:
        fb.script(
            error(503, "service_unavailable", "queue full", {"cluster_id": "c1", "code": "queue_full", "queue_depth": 5, "limit": 5}, {"Retry-After": "0"}),
            Reply(200, result()),
        )
        r = kubeline.Client(fb.url, "k").execute("c1", "sess_1", "get", ["pods"])
        assert r.output == "out\n"
        assert len(fb.seen) == 2


def test_execute_body_and_timeouts() -> None:
    with FakeBroker() as fb:
        fb.default = Reply(200, result())
        client = kubeline.Client(fb.url, "k")
        client.execute("c1", "sess_1", "logs", ["pod/x", "--tail=5"], timeout=12.5, max_output_bytes=1000, correlation_id="trace-1")
        seen = fb.seen[0]
        assert seen.method == "POST" and seen.path == "/debug/execute"
        assert seen.body == {
            "cluster_id": "c1", "session_id": "sess_1", "command_type": "logs",
            "args": ["pod/x", "--tail=5"], "timeout": 12.5, "max_output_bytes": 1000,
        }
        assert seen.headers["x-correlation-id"] == "trace-1"
        assert seen.headers["authorization"] == "Bearer k"
        # Optional fields are left out, so the broker's defaults apply.
        client.execute("c1", "sess_1", "version")
        assert fb.seen[1].body == {"cluster_id": "c1", "session_id": "sess_1", "command_type": "version", "args": []}


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("code,cls", sorted(kubeline.ERROR_CLASSES.items()))
def test_each_error_code_has_its_class(code: str, cls: type) -> None:
    with FakeBroker() as fb:
        fb.default = error(400, code, f"something {code}", {"code": "x"})
        with pytest.raises(cls) as info:
            kubeline.Client(fb.url, "k", max_retries=0).list_clusters()
        assert type(info.value) is cls
        assert info.value.code == code and info.value.message == f"something {code}"


def test_unknown_code_maps_to_the_base_class_and_request_id_header_is_kept() -> None:
    with FakeBroker() as fb:
        fb.default = error(418, "teapot", "I'm a teapot", None, {"X-Request-ID": "req_77"})
        with pytest.raises(kubeline.KubelineError) as info:
            kubeline.Client(fb.url, "k").list_clusters()
        err = info.value
        assert type(err) is kubeline.KubelineError
        assert (err.status, err.code, err.details, err.request_id) == (418, "teapot", {}, "req_77")
        assert "418 teapot: I'm a teapot" in str(err)


def test_non_json_error_body_is_a_protocol_error() -> None:
    with FakeBroker() as fb:
        fb.default = Reply(502, "<html>Bad Gateway</html>")
        with pytest.raises(kubeline.KubelineProtocolError) as info:
            kubeline.Client(fb.url, "k").list_clusters()
        assert info.value.status == 502
        assert "Bad Gateway" in str(info.value)


def test_answer_that_does_not_match_the_model_is_a_protocol_error() -> None:
    with FakeBroker() as fb:
        fb.default = Reply(200, {"clusters": [{"cluster_id": 3}]})
        with pytest.raises(kubeline.KubelineProtocolError) as info:
            kubeline.Client(fb.url, "k").list_clusters()
        assert "ClusterList" in str(info.value)


def test_unhealthy_broker_is_returned_not_raised() -> None:
    with FakeBroker() as fb:
        fb.default = Reply(503, {"status": "unhealthy", "version": "0.1.0", "timestamp": "2026-01-01T00:00:00Z", "uptime_seconds": 5, "reason": "store down"})
        h = kubeline.Client(fb.url).health()
        assert (h.status, h.reason) == ("unhealthy", "store down")
        assert len(fb.seen) == 1
        assert "authorization" not in fb.seen[0].headers


# --- connection failures -------------------------------------------------------------------------


def test_refused_connection_names_the_url_and_is_retried() -> None:
    with FakeBroker() as fb:
        url = fb.url
    client = kubeline.Client(url, "k", max_retries=1)  # nothing listens there any more
    with pytest.raises(kubeline.KubelineConnectionError) as info:
        client.list_clusters()
    err = info.value
    assert err.reason == "refused" and err.request_sent is False
    assert url in str(err) and "connection refused" in str(err) and "after 2 attempts" in str(err)
    assert err.__cause__ is None and err.__suppress_context__  # no transport traceback chained


def test_dns_failure_is_named_and_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    lookups: list[str] = []

    def no_such_host(host: str, *args: object, **kwargs: object) -> list[object]:
        lookups.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    # The resolver itself is replaced, so the test neither needs nor waits for a DNS server.
    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    client = kubeline.Client("http://no-such-host.invalid:8080", "k")
    with pytest.raises(kubeline.KubelineConnectionError) as info:
        client.list_clusters()
    assert info.value.reason == "dns"
    assert "no-such-host.invalid" in str(info.value) and "does not resolve" in str(info.value)
    assert lookups == ["no-such-host.invalid"]  # a single attempt


def test_tls_failure_is_named_and_not_retried() -> None:
    with FakeBroker() as fb:
        url = fb.url.replace("http://", "https://")  # the server speaks plain HTTP
        with pytest.raises(kubeline.KubelineConnectionError) as info:
            kubeline.Client(url, "k").list_clusters()
        assert info.value.reason == "tls"
        assert url in str(info.value) and "TLS handshake failed" in str(info.value)
        assert "http:// or https://" in str(info.value)


def test_client_timeout_is_a_clear_timeout_error() -> None:
    with SilentServer() as srv:
        client = kubeline.Client(srv.url, "k", timeout=0.3)
        started = time.monotonic()
        with pytest.raises(kubeline.KubelineTimeoutError) as info:
            client.list_clusters()
        assert time.monotonic() - started < 2  # a timeout is never retried
        err = info.value
        assert isinstance(err, kubeline.KubelineConnectionError) and err.reason == "timeout"
        assert srv.url in str(err) and "0.3 s" in str(err)


def test_execute_with_a_command_timeout_waits_at_least_that_long() -> None:
    with FakeBroker() as fb:
        fb.default = Reply(200, result(), hang=0.5)
        client = kubeline.Client(fb.url, "k", timeout=0.2)
        # 0.2 s alone would time out; an execute given a command timeout waits for it (+5 s).
        assert client.execute("c1", "sess_1", "get", ["pods"], timeout=1).output == "out\n"
        # Without one, the client's timeout is the limit.
        with pytest.raises(kubeline.KubelineTimeoutError) as info:
            client.execute("c1", "sess_1", "get", ["pods"])
        assert "may have run" in str(info.value) and "0.2 s" in str(info.value)
        assert len(fb.seen) == 2  # not sent again


# --- configuration -------------------------------------------------------------------------------


def test_endpoint_and_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeBroker() as fb:
        fb.default = Reply(200, CLUSTERS)
        monkeypatch.setenv("KUBELINE_ENDPOINT", fb.url + "/")
        monkeypatch.setenv("KUBELINE_API_KEY", "from-env")
        client = kubeline.Client()
        assert client.endpoint == fb.url
        client.list_clusters()
        assert fb.seen[0].headers["authorization"] == "Bearer from-env"
        assert fb.seen[0].path == "/clusters"
        # Arguments win over the environment.
        kubeline.Client(fb.url, "explicit").list_clusters()
        assert fb.seen[1].headers["authorization"] == "Bearer explicit"


def test_missing_or_bad_endpoint_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBELINE_ENDPOINT", raising=False)
    with pytest.raises(kubeline.KubelineConfigError, match="KUBELINE_ENDPOINT"):
        kubeline.Client()
    with pytest.raises(kubeline.KubelineConfigError, match="http"):
        kubeline.Client("broker:8080")
    with pytest.raises(kubeline.KubelineConfigError, match="max_retries"):
        kubeline.Client("http://b", max_retries=-1)


def test_args_must_be_a_list() -> None:
    client = kubeline.Client("http://127.0.0.1:9", "k")
    with pytest.raises(kubeline.KubelineConfigError, match="shlex"):
        client.execute("c1", "s", "get", "pods -A")  # type: ignore[arg-type]


def test_path_parameters_are_quoted() -> None:
    with FakeBroker() as fb:
        fb.default = error(404, "not_found", "Session not found")
        with pytest.raises(kubeline.NotFoundError):
            kubeline.Client(fb.url, "k").get_session("a/b c")
        assert fb.seen[0].path == "/debug/session/a%2Fb%20c"


# --- windows ---------------------------------------------------------------------------------------


def _window(output: str, offset: int, total: int, next_offset: "int | None") -> Reply:
    length = len(output.encode())
    return Reply(200, result(output, window={"offset": offset, "length": length, "total_bytes": total, "next_offset": next_offset}))


def test_read_output_follows_the_windows() -> None:
    whole = "line one\nline två\nline three\n"
    a, b, c = whole[:9], whole[9:19], whole[19:]
    la, lb = len(a.encode()), len(b.encode())
    total = len(whole.encode())
    with FakeBroker() as fb:
        fb.script(_window(a, 0, total, la), _window(b, la, total, la + lb), _window(c, la + lb, total, None))
        assert kubeline.Client(fb.url, "k").read_output("res_1", limit=10) == whole
        assert [s.path for s in fb.seen] == [
            "/debug/result/res_1?offset=0&limit=10",
            f"/debug/result/res_1?offset={la}&limit=10",
            f"/debug/result/res_1?offset={la + lb}&limit=10",
        ]


def test_read_output_from_a_broker_without_windows_takes_the_one_answer() -> None:
    with FakeBroker() as fb:
        fb.default = Reply(200, result("all of it\n"))
        assert kubeline.Client(fb.url, "k").read_output("res_1") == "all of it\n"
        assert len(fb.seen) == 1


def test_read_output_refuses_a_window_that_does_not_advance() -> None:
    with FakeBroker() as fb:
        fb.default = _window("x", 0, 5, 0)
        with pytest.raises(kubeline.KubelineProtocolError, match="does not advance"):
            kubeline.Client(fb.url, "k").read_output("res_1")


# --- sessions ------------------------------------------------------------------------------------

SESSION = {"session_id": "sess_1", "cluster_id": "c1", "status": "active", "created_at": "2026-01-01T00:00:00Z", "expires_at": "2026-01-01T01:00:00Z"}
CLOSED = {"session_id": "sess_1", "status": "closed", "closed_at": "2026-01-01T00:01:00Z"}


def test_session_is_closed_when_the_body_raises() -> None:
    with FakeBroker() as fb:
        fb.script(Reply(201, SESSION), Reply(200, CLOSED))
        client = kubeline.Client(fb.url, "k")
        with pytest.raises(ZeroDivisionError):
            with client.debug_session("c1") as s:
                1 / 0
        assert [(x.method, x.path) for x in fb.seen] == [("POST", "/debug/session"), ("DELETE", "/debug/session/sess_1")]
        assert s.closed is not None and not s.is_open


def test_failure_to_close_does_not_hide_the_body_error() -> None:
    with FakeBroker() as fb:
        fb.script(Reply(201, SESSION), error(401, "unauthorized", "revoked"))
        with pytest.raises(ZeroDivisionError) as info:
            with kubeline.Client(fb.url, "k").debug_session("c1"):
                1 / 0
        notes = getattr(info.value, "__notes__", None)
        if notes is not None:  # Python >= 3.11
            assert any("sess_1" in n for n in notes)


@pytest.mark.anyio
async def test_async_session_is_closed_when_the_body_is_cancelled() -> None:
    with FakeBroker() as fb:
        fb.script(Reply(201, SESSION), Reply(200, result(), hang=5), Reply(200, CLOSED))
        async with kubeline.AsyncClient(fb.url, "k") as client:
            with anyio.move_on_after(0.5):
                async with client.debug_session("c1") as s:
                    await s.execute("get", ["pods"])
        assert [(x.method, x.path) for x in fb.seen] == [
            ("POST", "/debug/session"), ("POST", "/debug/execute"), ("DELETE", "/debug/session/sess_1"),
        ]
        assert s.closed is not None


@pytest.mark.anyio
async def test_async_429_retry_and_connection_error() -> None:
    with FakeBroker() as fb:
        fb.script(error(429, "rate_limited", "slow", {"retry_after": 0}, {"Retry-After": "0"}), Reply(200, CLUSTERS))
        async with kubeline.AsyncClient(fb.url, "k") as client:
            assert (await client.list_clusters()).clusters
        assert len(fb.seen) == 2
        url = fb.url
    async with kubeline.AsyncClient(url, "k", max_retries=0) as client:
        with pytest.raises(kubeline.KubelineConnectionError) as info:
            await client.list_clusters()
        assert info.value.reason == "refused" and url in str(info.value)


def test_sync_and_async_clients_have_the_same_api() -> None:
    def public(cls: type) -> dict[str, inspect.Signature]:
        return {
            n: inspect.signature(getattr(cls, n))
            for n in dir(cls)
            if not n.startswith("_") and callable(getattr(cls, n)) and n not in ("close", "aclose")
        }

    for sync_cls, async_cls in ((kubeline.Client, kubeline.AsyncClient), (kubeline.DebugSession, kubeline.AsyncDebugSession)):
        s, a = public(sync_cls), public(async_cls)
        assert s.keys() == a.keys()
        for name in s:
            assert list(s[name].parameters) == list(a[name].parameters), name
            is_coro = inspect.iscoroutinefunction(getattr(async_cls, name))
            assert is_coro == (name not in ("debug_session", "with_options")), name


def test_with_options_shares_the_pool_and_changes_only_what_is_given() -> None:
    with FakeBroker() as fb:
        client = kubeline.Client(fb.url, "k", timeout=30, max_retries=2)
        other = client.with_options(max_retries=0)
        assert (other.max_retries, other.timeout, other.api_key) == (0, 30, "k")
        assert other._http is client._http and client.max_retries == 2
        other.close()  # does not close the shared pool
        fb.default = Reply(200, CLUSTERS)
        assert client.list_clusters().clusters
