"""The SDK against the real broker + agent of the test contract (KUBELINE_TEST_*): every call
goes over HTTP to the broker, and commands run on the test bed's Kubernetes API server."""

from __future__ import annotations

import logging
import time
import uuid

import anyio
import pytest

import kubeline
from conftest import Live

pytestmark = pytest.mark.live


def assert_closed(client: kubeline.Client, session_id: str) -> None:
    """A closed session reads as closed (or is gone, as a broker may purge it)."""
    try:
        info = client.get_session(session_id)
    except kubeline.NotFoundError:
        return
    assert info.status == "closed", info


# --- health and clusters -------------------------------------------------------------------------


def test_health(live: Live) -> None:
    # /health is public: no key needed.
    health = kubeline.Client(endpoint=live.endpoint).health()
    assert health.status == "healthy"
    assert health.version and health.uptime_seconds >= 0 and health.reason is None


def test_list_clusters_has_the_connected_bed(client: kubeline.Client, live: Live) -> None:
    clusters = {c.cluster_id: c for c in client.list_clusters().clusters}
    assert live.cluster in clusters, clusters
    assert clusters[live.cluster].status == "connected"
    assert clusters[live.cluster].agent_version


def test_status_of_the_bed(client: kubeline.Client, live: Live) -> None:
    status = client.cluster_status(live.cluster)
    assert status.cluster_id == live.cluster
    assert status.status == "connected"
    assert status.last_seen is not None and status.queue_depth >= 0 and status.active_sessions >= 0
    assert status.kubernetes_version and status.kubernetes_version.startswith("v")


# --- sessions ------------------------------------------------------------------------------------


def test_session_context_manager_sync(client: kubeline.Client, live: Live) -> None:
    with client.debug_session(live.cluster, metadata={"user": "pysdk-tests"}) as s:
        assert s.created is not None and s.created.status == "active"
        assert s.created.cluster_id == live.cluster
        info = s.info()
        assert (info.session_id, info.status, info.commands_executed) == (s.session_id, "active", 0)
        listed = client.list_sessions(cluster_id=live.cluster, status="active", limit=1000)
        assert s.session_id in {x.session_id for x in listed.sessions}
        assert listed.total == len(listed.sessions)
        r = s.execute("get", ["namespaces"])
        assert r.session_id == s.session_id and r.cluster_id == live.cluster
    assert s.closed is not None and s.closed.status == "closed"
    assert_closed(client, s.session_id)


@pytest.mark.anyio
async def test_session_context_manager_async(client: kubeline.Client, live: Live) -> None:
    async with kubeline.AsyncClient(endpoint=live.endpoint, api_key=live.api_key) as aclient:
        async with aclient.debug_session(live.cluster) as s:
            r = await s.execute("get", ["pods", "-A"])
            assert r.status == "completed" and r.exit_code == 0
            assert r.output.startswith("NAMESPACE") and len(r.output.splitlines()) >= 2
            assert (await s.info()).commands_executed == 1
        assert s.closed is not None
        info = await aclient.get_session(s.session_id)
        assert info.status == "closed"
    assert_closed(client, s.session_id)


def test_session_closed_when_the_body_raises(client: kubeline.Client, live: Live) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with client.debug_session(live.cluster) as s:
            s.execute("version")
            raise RuntimeError("boom")
    assert_closed(client, s.session_id)
    # A closed session runs nothing more.
    with pytest.raises(kubeline.InvalidRequestError) as info:
        client.execute(live.cluster, s.session_id, "version")
    assert info.value.details.get("code") == "session_closed"


# --- commands ------------------------------------------------------------------------------------


def test_execute_get_pods_all_namespaces_and_version(client: kubeline.Client, live: Live) -> None:
    with client.debug_session(live.cluster) as s:
        pods = s.execute("get", ["pods", "-A"], correlation_id="pysdk-test-corr")
        assert pods.status == "completed" and pods.exit_code == 0 and pods.error is None
        assert pods.succeeded and pods.truncated is None
        assert pods.correlation_id == "pysdk-test-corr"
        lines = pods.output.splitlines()
        assert lines[0].split()[:3] == ["NAMESPACE", "NAME", "READY"], lines[0]
        assert len(lines) >= 2, "the test bed has pods"
        # Every row is in a namespace the cluster has.
        namespaces = s.execute("get", ["namespaces", "-o", "name"]).output.split()
        assert "namespace/default" in namespaces
        assert {"namespace/" + line.split()[0] for line in lines[1:]} <= set(namespaces)

        again = client.get_result(pods.result_id)
        assert (again.output, again.status, again.exit_code) == (pods.output, "completed", 0)
        assert again.result_id == pods.result_id and again.session_id == s.session_id

        version = s.execute("version")
        assert version.status == "completed" and version.exit_code == 0
        assert "Server Version: v" in version.output


def test_command_kubectl_fails_is_a_failed_result(client: kubeline.Client, live: Live) -> None:
    with client.debug_session(live.cluster) as s:
        r = s.execute("get", ["pods", "no-such-pod-pysdk", "-n", "default"])
    assert r.status == "failed" and r.exit_code == 1 and not r.succeeded
    assert r.error and "NotFound" in r.error


def test_refused_command_raises_invalid_request(client: kubeline.Client, live: Live) -> None:
    with client.debug_session(live.cluster) as s:
        with pytest.raises(kubeline.InvalidRequestError) as info:
            s.execute("delete", ["pods", "x"])
    err = info.value
    assert (err.status, err.code) == (400, "invalid_request")
    assert "delete" in err.message and "refused" in err.message.lower()
    assert err.details.get("command_type") == "delete"
    assert "delete" in str(err)


def test_output_budget_truncates(client: kubeline.Client, live: Live) -> None:
    with client.debug_session(live.cluster) as s:
        r = s.execute("get", ["pods", "-A", "-o", "yaml"], max_output_bytes=1000)
    assert r.truncated is not None and r.truncated.limit_bytes == 1000 and r.truncated.omitted_bytes > 0
    assert len(r.output.encode()) <= 1000


# --- errors --------------------------------------------------------------------------------------


def test_unknown_cluster_is_not_found(client: kubeline.Client) -> None:
    name = f"no-such-cluster-{uuid.uuid4().hex[:8]}"
    with pytest.raises(kubeline.NotFoundError) as info:
        client.create_session(name)
    assert info.value.status == 404 and name in info.value.message
    with pytest.raises(kubeline.NotFoundError):
        client.cluster_status(name)


def test_unknown_session_and_result_are_not_found(client: kubeline.Client) -> None:
    with pytest.raises(kubeline.NotFoundError):
        client.get_session("sess_doesnotexist")
    with pytest.raises(kubeline.NotFoundError):
        client.get_result("res_doesnotexist")


def test_cluster_not_granted_is_forbidden(live: Live) -> None:
    other = kubeline.Client(endpoint=live.endpoint, api_key=live.other_key)
    with pytest.raises(kubeline.ForbiddenError) as info:
        other.create_session(live.cluster)
    err = info.value
    assert (err.status, err.code) == (403, "forbidden")
    assert err.details.get("code") == "cluster_not_granted"
    assert err.details.get("cluster_id") == live.cluster
    with pytest.raises(kubeline.ForbiddenError):
        other.cluster_status(live.cluster)
    # A read key may not manage credentials.
    with pytest.raises(kubeline.ForbiddenError) as info:
        other.list_api_keys()
    assert info.value.details.get("code") == "admin_scope_required"


def test_bad_key_is_unauthorized(live: Live) -> None:
    bad = kubeline.Client(endpoint=live.endpoint, api_key="kl_not-a-key-" + uuid.uuid4().hex)
    with pytest.raises(kubeline.UnauthorizedError) as info:
        bad.list_clusters()
    assert (info.value.status, info.value.code) == (401, "unauthorized")
    assert info.value.details.get("code") == "invalid_credentials"
    # No key at all.
    with pytest.raises(kubeline.UnauthorizedError) as info:
        kubeline.Client(endpoint=live.endpoint).list_clusters()
    assert info.value.details.get("code") == "missing_credentials"


def test_dead_endpoint_is_a_fast_clear_connection_error(live: Live) -> None:
    client = kubeline.Client(endpoint=live.dead_endpoint, api_key=live.api_key)
    started = time.monotonic()
    with pytest.raises(kubeline.KubelineConnectionError) as info:
        client.list_clusters()
    took = time.monotonic() - started
    err = info.value
    assert took < 5, f"took {took:.1f} s"
    assert err.reason == "refused" and err.request_sent is False
    message = str(err)
    assert live.dead_endpoint in message and "connection refused" in message
    assert "Traceback" not in message and "httpx" not in message and "httpcore" not in message


@pytest.mark.anyio
async def test_dead_endpoint_async(live: Live) -> None:
    async with kubeline.AsyncClient(endpoint=live.dead_endpoint, api_key=live.api_key, max_retries=0) as client:
        with pytest.raises(kubeline.KubelineConnectionError) as info:
            await client.create_session(live.cluster)
    assert info.value.reason == "refused" and live.dead_endpoint in str(info.value)


def test_tiny_timeout_is_a_clear_timeout_error(client: kubeline.Client, live: Live) -> None:
    with client.debug_session(live.cluster) as s:
        hasty = client.with_options(timeout=0.001)  # 1 ms: less than any command takes
        started = time.monotonic()
        with pytest.raises(kubeline.KubelineTimeoutError) as info:
            hasty.execute(live.cluster, s.session_id, "get", ["pods", "-A", "-o", "yaml"])
        assert time.monotonic() - started < 5
    err = info.value
    assert err.reason == "timeout" and err.request_sent is True
    message = str(err)
    assert live.endpoint + "/debug/execute" in message and "0.001 s" in message
    assert "may have run" in message and "timeout=" in message  # what happened, what to change
    assert "Traceback" not in message


# --- rate limits ---------------------------------------------------------------------------------


def test_rate_limited_is_retried_after_retry_after(
    client: kubeline.Client, live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    # A key of its own with a tiny budget: 60 standard requests a minute = a burst of 60, then
    # one a second (the broker under test runs without default limits).
    created = client.create_api_key(
        "read",
        clusters=[live.cluster],
        expires_in_seconds=300,
        name="pysdk-test-rate-limit",
        rate_limits={"standard": 60},
    )
    assert created.key and created.rate_limits is not None and created.rate_limits.standard == 60
    try:
        strict = kubeline.Client(endpoint=live.endpoint, api_key=created.key, max_retries=0)
        patient = strict.with_options(max_retries=3)

        def exhaust() -> kubeline.RateLimitedError:
            for _ in range(200):
                try:
                    strict.list_clusters()
                except kubeline.RateLimitedError as e:
                    return e
            raise AssertionError("no 429 after 200 requests with a budget of 60 a minute")

        err = exhaust()
        assert (err.status, err.code) == (429, "rate_limited")
        assert err.retry_after is not None and 0 < err.retry_after <= 2
        assert err.limit == 60 and err.details.get("limit") == 60

        # The patient client meets the same 429, waits Retry-After and gets its answer. (If the
        # budget refilled between the two calls there was nothing to retry: exhaust it again.)
        for _ in range(3):
            caplog.clear()
            with caplog.at_level(logging.INFO, logger="kubeline"):
                started = time.monotonic()
                clusters = patient.list_clusters()
                took = time.monotonic() - started
            retries = [r for r in caplog.records if "retrying GET" in r.getMessage() and "429" in r.getMessage()]
            if retries:
                break
            exhaust()
        assert retries, "the patient client never met a 429"
        assert live.cluster in {c.cluster_id for c in clusters.clusters}
        assert took >= 0.5 * err.retry_after, f"answered after {took:.2f} s: did it wait Retry-After?"
    finally:
        revoked = client.revoke_api_key(created.id)
        assert revoked.revoked_at is not None
    keys = {k.id: k for k in client.list_api_keys().api_keys}
    assert keys[created.id].revoked_at is not None and keys[created.id].name == "pysdk-test-rate-limit"
    with pytest.raises(kubeline.UnauthorizedError) as info:
        kubeline.Client(endpoint=live.endpoint, api_key=created.key).list_clusters()
    assert info.value.details.get("code") == "revoked"


# --- windowed result reads -------------------------------------------------------------------------


def test_windowed_read_of_a_large_output(client: kubeline.Client, live: Live) -> None:
    with client.debug_session(live.cluster) as s:
        full = s.execute("get", ["pods", "-A", "-o", "yaml"])
    assert full.status == "completed" and full.truncated is None
    total = len(full.output.encode())
    window_bytes = 2048
    assert total > 4 * window_bytes, f"the test bed's pods make only {total} bytes of YAML"

    first = client.get_result(full.result_id, offset=0, limit=window_bytes)
    assert first.window is not None, "the broker answered no `window`: it has no windowed result reads"
    w = first.window
    assert (w.offset, w.total_bytes) == (0, total)
    assert w.length == len(first.output.encode()) <= window_bytes
    assert w.next_offset == w.length
    assert full.output.startswith(first.output)
    assert first.output.endswith("\n")  # windows end after a whole line when they can

    end = client.get_result(full.result_id, offset=total)
    assert end.output == "" and end.window is not None and end.window.next_offset is None

    assert client.read_output(full.result_id, limit=window_bytes) == full.output
    assert client.read_output(full.result_id) == full.output  # the broker's default window

    with pytest.raises(kubeline.InvalidRequestError):
        client.get_result(full.result_id, offset=total + 1)


@pytest.mark.anyio
async def test_windowed_read_async(live: Live) -> None:
    async with kubeline.AsyncClient(endpoint=live.endpoint, api_key=live.api_key) as aclient:
        async with aclient.debug_session(live.cluster) as s:
            full = await s.execute("get", ["pods", "-A", "-o", "yaml"])
            assert await s.read_output(full.result_id, limit=4096) == full.output


def test_parallel_async_commands(live: Live) -> None:
    async def main() -> list[str]:
        async with kubeline.AsyncClient(endpoint=live.endpoint, api_key=live.api_key) as aclient:
            async with aclient.debug_session(live.cluster) as s:
                outputs: list[str] = []

                async def one(args: list[str]) -> None:
                    outputs.append((await s.execute("get", args)).output)

                async with anyio.create_task_group() as tg:
                    for args in (["ns"], ["pods", "-A"], ["deployments", "-A"], ["svc", "-A"]):
                        tg.start_soon(one, args)
                return outputs

    outputs = anyio.run(main)
    assert len(outputs) == 4 and all(o.strip() for o in outputs)


# --- the README's example ---------------------------------------------------------------------------


def test_readme_example_runs(live: Live) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    sdk = Path(__file__).resolve().parents[1]
    example = (sdk / "examples" / "quickstart.py").read_text()
    assert example.strip() in (sdk / "README.md").read_text(), "README.md must show examples/quickstart.py as it is"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBELINE_")}
    env.update(KUBELINE_ENDPOINT=live.endpoint, KUBELINE_API_KEY=live.api_key)
    done = subprocess.run(
        [sys.executable, str(sdk / "examples" / "quickstart.py"), live.cluster],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("NAMESPACE") and "Server Version: v" in done.stdout
    assert "refused: forbidden_command" in done.stdout
