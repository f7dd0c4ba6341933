"""kubeline's MCP server driven by the real Python MCP client (`mcp` 2.x).

Run by tests/it/clients.rs (through test.sh) against a live broker with an agent on the test bed;
the broker comes from the environment:

    KUBELINE_TEST_ENDPOINT, KUBELINE_TEST_API_KEY, KUBELINE_TEST_CLUSTER,
    KUBELINE_TEST_OTHER_KEY (a key that may not reach the cluster), KUBELINE_TEST_BIN (the
    kubeline binary, for the stdio bridge `kubeline mcp`).

Every test runs in both protocol eras: 2026-07-28 (stateless, `server/discover`) and the
legacy initialize handshake. The sizes of `tools/list` and of the outputs of the calls made here
are written to $KUBELINE_TEST_REPORT (JSON lines) when it is set.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

ENDPOINT = os.environ["KUBELINE_TEST_ENDPOINT"].rstrip("/")
KEY = os.environ["KUBELINE_TEST_API_KEY"]
CLUSTER = os.environ["KUBELINE_TEST_CLUSTER"]
OTHER_KEY = os.environ["KUBELINE_TEST_OTHER_KEY"]
MCP_URL = f"{ENDPOINT}/mcp"
MODES = ["2026-07-28", "legacy"]
TOOLS = ["list_clusters", "cluster_status", "kubectl", "fleet_kubectl", "read_result", "open_session", "close_session"]

OUTPUT_TOKENS: list[int] = []


def report(**fields) -> None:
    path = os.environ.get("KUBELINE_TEST_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(fields) + "\n")


def run(coro):
    return asyncio.run(coro)


def client(mode: str, key: str | None = KEY) -> Client:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60.0))
    return Client(streamable_http_client(MCP_URL, http_client=http), mode=mode)


def text_of(result) -> str:
    return "".join(block.text for block in result.content if block.type == "text")


def tokens(text: str) -> int:
    return (len(text.encode()) + 3) // 4


async def call(c: Client, name: str, arguments: dict):
    result = await c.call_tool(name, arguments)
    OUTPUT_TOKENS.append(tokens(text_of(result)))
    return result


def rest(method: str, path: str, body: dict | None = None, key: str = KEY):
    with httpx2.Client(base_url=ENDPOINT, headers={"Authorization": f"Bearer {key}"}, timeout=60) as h:
        r = h.request(method, path, json=body)
        return r.status_code, r.json()


@pytest.mark.parametrize("mode", MODES)
def test_tools_are_few_read_only_and_typed(mode):
    async def go():
        async with client(mode) as c:
            era = c.protocol_version
            listed = await c.list_tools()
            return era, listed

    era, listed = run(go())
    if mode == "legacy":
        assert era == "2025-11-25", era
    else:
        assert era == "2026-07-28", era
    assert [t.name for t in listed.tools] == TOOLS
    for t in listed.tools:
        assert t.annotations is not None and t.annotations.read_only_hint is True, t.name
        assert t.output_schema and t.output_schema["type"] == "object", t.name
        assert t.description and len(t.description) < 400, t.name
    size = len(json.dumps([t.model_dump(by_alias=True, exclude_none=True) for t in listed.tools]))
    report(kind="tools_list", mode=mode, bytes=size, tokens=(size + 3) // 4)
    assert size < 8000, f"tools/list is {size} bytes"


@pytest.mark.parametrize("mode", MODES)
def test_get_pods_is_the_rest_result_byte_for_byte(mode):
    async def go():
        async with client(mode) as c:
            clusters = await call(c, "list_clusters", {})
            status = await call(c, "cluster_status", {"cluster_id": CLUSTER})
            pods = await call(c, "kubectl", {"cluster_id": CLUSTER, "command_type": "get", "args": ["pods", "-A"]})
            return clusters, status, pods

    clusters, status, pods = run(go())
    assert not clusters.is_error
    assert {"cluster_id": CLUSTER, "status": "connected"}.items() <= clusters.structured_content["clusters"][0].items()
    assert not status.is_error and status.structured_content["status"] == "connected"
    assert not pods.is_error, text_of(pods)
    s = pods.structured_content
    assert s["status"] == "completed" and s["exit_code"] == 0
    assert s["window"]["next_offset"] is None, "get pods -A fits the default budget"
    assert text_of(pods) == s["output"]
    # The bytes the REST API has for the same result, and a fresh REST execute.
    code, stored = rest("GET", f"/debug/result/{s['result_id']}")
    assert code == 200 and stored["output"] == text_of(pods)
    assert stored["cluster_id"] == CLUSTER and stored["session_id"] == s["session_id"]
    code, session = rest("POST", "/debug/session", {"cluster_id": CLUSTER})
    assert code == 201, session
    code, fresh = rest(
        "POST",
        "/debug/execute",
        {"cluster_id": CLUSTER, "session_id": session["session_id"], "command_type": "get", "args": ["pods", "-A"]},
    )
    assert code == 200, fresh
    lines = lambda out: [" ".join(line.split()[:4]) for line in out.splitlines()]  # noqa: E731 (AGE may tick)
    assert lines(fresh["output"]) == lines(text_of(pods))


@pytest.mark.parametrize("mode", MODES)
def test_refusals_are_tool_errors_that_say_what_would_work(mode):
    async def go():
        async with client(mode) as c:
            delete = await call(c, "kubectl", {"cluster_id": CLUSTER, "command_type": "delete", "args": ["pod", "x"]})
            flag = await call(c, "kubectl", {"cluster_id": CLUSTER, "command_type": "get", "args": ["pods", "--token=x"]})
            unknown = await call(c, "kubectl", {"cluster_id": "no-such-cluster", "command_type": "get", "args": ["pods"]})
            missing = await call(c, "kubectl", {"cluster_id": CLUSTER, "command_type": "get"})
            wrong = await call(c, "kubectl", {"cluster_id": CLUSTER, "command_type": "get", "args": "pods"})
            wrong_item = await call(c, "kubectl", {"cluster_id": CLUSTER, "command_type": "get", "args": ["pods", 3]})
            extra = await call(c, "cluster_status", {"cluster_id": CLUSTER, "verbose": True})
            not_found = await call(c, "kubectl", {"cluster_id": CLUSTER, "command_type": "get", "args": ["pod", "nope"]})
            no_result = await call(c, "read_result", {"result_id": "res_nope"})
            return delete, flag, unknown, missing, wrong, wrong_item, extra, not_found, no_result

    delete, flag, unknown, missing, wrong, wrong_item, extra, not_found, no_result = run(go())
    for r in (delete, flag, unknown, missing, wrong, wrong_item, extra, not_found, no_result):
        assert r.is_error, text_of(r)
    assert "delete" in text_of(delete) and "read-only" in text_of(delete)
    assert "supported: get" in text_of(delete)
    assert "--token" in text_of(flag)
    assert "Cluster not found: no-such-cluster" in text_of(unknown) and "list_clusters" in text_of(unknown)
    assert "argument `args` is missing" in text_of(missing)
    assert "argument `args` must be an array of strings, not a string" in text_of(wrong)
    assert "argument `args[1]` must be a string, not a number" in text_of(wrong_item)
    assert "unknown argument `verbose`" in text_of(extra)
    # A command that ran and failed: kubectl's stderr and exit code.
    assert 'Error from server (NotFound): pods "nope" not found' in text_of(not_found)
    assert not_found.structured_content["exit_code"] == 1
    assert "Result not found: res_nope" in text_of(no_result)


@pytest.mark.parametrize("mode", MODES)
def test_a_cluster_the_credential_may_not_reach(mode):
    async def go():
        async with client(mode, OTHER_KEY) as c:
            clusters = await call(c, "list_clusters", {})
            run_ = await call(c, "kubectl", {"cluster_id": CLUSTER, "command_type": "get", "args": ["pods"]})
            return clusters, run_

    clusters, refused = run(go())
    assert clusters.structured_content["clusters"] == []
    assert refused.is_error
    assert f"may not reach cluster {CLUSTER}" in text_of(refused)
    assert refused.structured_content["details"]["code"] == "cluster_not_granted"


@pytest.mark.parametrize("mode", MODES)
def test_a_cut_output_is_read_to_the_end_by_windows(mode):
    async def go():
        async with client(mode) as c:
            first = await call(
                c,
                "kubectl",
                {"cluster_id": CLUSTER, "command_type": "get", "args": ["pods", "-A", "-o", "yaml"], "max_bytes": 4096},
            )
            assert not first.is_error, text_of(first)
            s = first.structured_content
            parts, window, reads = [s["output"]], s["window"], 0
            while window["next_offset"] is not None:
                nxt = await call(
                    c, "read_result", {"result_id": s["result_id"], "offset": window["next_offset"], "limit": 8192}
                )
                assert not nxt.is_error, text_of(nxt)
                assert len(nxt.structured_content["output"].encode()) <= 8192
                parts.append(nxt.structured_content["output"])
                window, reads = nxt.structured_content["window"], reads + 1
            return first, parts, reads

    first, parts, reads = run(go())
    note = text_of(first)
    assert "[kubeline: output cut at" in note and "tokens) left" in note
    assert "read_result" in note and "-l SELECTOR" in note
    assert reads >= 2
    code, whole = rest("GET", f"/debug/result/{first.structured_content['result_id']}")
    assert code == 200
    assert "".join(parts) == whole["output"]
    assert whole["output"].startswith("apiVersion: v1\nitems:\n")


@pytest.mark.parametrize("mode", MODES)
def test_sessions_open_and_close(mode):
    async def go():
        async with client(mode) as c:
            opened = await call(c, "open_session", {"cluster_id": CLUSTER})
            sid = opened.structured_content["session_id"]
            ran = await call(c, "kubectl", {"cluster_id": CLUSTER, "session_id": sid, "command_type": "version", "args": []})
            closed = await call(c, "close_session", {"session_id": sid})
            after = await call(c, "kubectl", {"cluster_id": CLUSTER, "session_id": sid, "command_type": "version", "args": []})
            return sid, ran, closed, after

    sid, ran, closed, after = run(go())
    assert not ran.is_error and ran.structured_content["session_id"] == sid
    assert "Server Version" in text_of(ran)
    assert not closed.is_error and closed.structured_content["status"] == "closed"
    assert after.is_error and "is closed" in text_of(after)


@pytest.mark.parametrize("mode", MODES)
def test_missing_or_wrong_credentials_are_refused(mode):
    for key in (None, "not-a-key"):
        with pytest.raises(Exception) as caught:
            run(_list_with(mode, key))
        assert "401" in repr(caught.value) or "nauthorized" in repr(caught.value), repr(caught.value)
    # What the client saw: a JSON-RPC error carrying the REST body, and the Bearer challenge.
    with httpx2.Client(timeout=10) as h:
        r = h.post(MCP_URL, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert r.status_code == 401
        error = r.json()["error"]
        assert error["message"].startswith("Missing credentials"), error
        assert error["data"]["error"] == "unauthorized"
        assert r.headers["www-authenticate"] == 'Bearer realm="kubeline"'
        # Without JWTs there is no authorization server to name (tests/it/trust.rs checks it with).
        r = h.get(f"{ENDPOINT}/.well-known/oauth-protected-resource/mcp")
        assert r.status_code == 404 and "no --jwt-issuer" in r.json()["message"]


async def _list_with(mode, key):
    async with client(mode, key) as c:
        await c.list_tools()


def test_oversized_requests_are_refused_with_a_size_message():
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "kubectl", "arguments": {"cluster_id": CLUSTER, "command_type": "get", "args": ["x" * 200_000]}},
    }
    with httpx2.Client(timeout=10, headers={"Authorization": f"Bearer {KEY}"}) as h:
        r = h.post(
            MCP_URL,
            json=body,
            headers={"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"},
        )
    assert r.status_code == 413, r.text
    assert "too large" in r.text.lower(), r.text


def test_the_stdio_bridge_speaks_for_desktop_clients():
    binary = os.environ.get("KUBELINE_TEST_BIN")
    assert binary, "KUBELINE_TEST_BIN names the kubeline binary"
    params = StdioServerParameters(
        command=binary,
        args=["mcp", "--broker", ENDPOINT],
        env={"KUBELINE_API_KEY": KEY, "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")},
    )

    async def go():
        async with Client(params) as c:
            listed = await c.list_tools()
            pods = await call(c, "kubectl", {"cluster_id": CLUSTER, "command_type": "get", "args": ["pods", "-A"]})
            refused = await call(c, "kubectl", {"cluster_id": CLUSTER, "command_type": "delete", "args": ["pod", "x"]})
            return listed, pods, refused

    listed, pods, refused = run(go())
    assert [t.name for t in listed.tools] == TOOLS
    assert not pods.is_error and "NAMESPACE" in text_of(pods)
    assert refused.is_error and "read-only" in text_of(refused)


def test_zz_report_output_tokens():
    assert OUTPUT_TOKENS, "the tests above made calls"
    report(kind="output_tokens", calls=len(OUTPUT_TOKENS), median=statistics.median(OUTPUT_TOKENS), max=max(OUTPUT_TOKENS))
