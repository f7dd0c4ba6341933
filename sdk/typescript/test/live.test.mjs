// Against the live broker + agent of the test contract (KUBELINE_TEST_*), through the ESM build
// (the package's own "exports" map: `import "kubeline"`).
import assert from "node:assert/strict";
import { after, test } from "node:test";
import {
  Client,
  DebugSession,
  ForbiddenError,
  InvalidRequestError,
  KubelineConnectionError,
  KubelineError,
  KubelineTimeoutError,
  NotFoundError,
  RateLimitedError,
  UnauthorizedError,
} from "kubeline";
import {
  API_KEY,
  CLUSTER,
  DEAD_ENDPOINT,
  ENDPOINT,
  OTHER_KEY,
  client,
  createApiKey,
  recordingFetch,
  revokeApiKey,
  thrown,
} from "./helpers.mjs";

const madeKeys = [];
after(async () => {
  for (const id of madeKeys) await revokeApiKey(id);
});

test("health: the broker is healthy and says its version", async () => {
  const health = await client().health();
  assert.equal(health.status, "healthy");
  assert.equal(typeof health.version, "string");
  assert.ok(health.version.length > 0);
  assert.equal(typeof health.uptimeSeconds, "number");
  assert.equal(health.raw.uptime_seconds, health.uptimeSeconds, "raw keeps the snake_case model");
});

test("endpoint and API key default to KUBELINE_ENDPOINT / KUBELINE_API_KEY", async () => {
  const saved = { e: process.env.KUBELINE_ENDPOINT, k: process.env.KUBELINE_API_KEY };
  process.env.KUBELINE_ENDPOINT = ENDPOINT + "/";
  process.env.KUBELINE_API_KEY = API_KEY;
  try {
    const c = new Client();
    assert.equal(c.endpoint, ENDPOINT.replace(/\/+$/, ""));
    const clusters = await c.listClusters();
    assert.ok(clusters.some((x) => x.clusterId === CLUSTER));
  } finally {
    for (const [name, value] of [["KUBELINE_ENDPOINT", saved.e], ["KUBELINE_API_KEY", saved.k]]) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
});

test("listClusters: the test cluster is there and connected", async () => {
  const clusters = await client().listClusters();
  const bed = clusters.find((c) => c.clusterId === CLUSTER);
  assert.ok(bed, `cluster ${CLUSTER} in ${JSON.stringify(clusters.map((c) => c.clusterId))}`);
  assert.equal(bed.status, "connected");
  assert.equal(typeof bed.agentVersion, "string");
  assert.equal(bed.raw.cluster_id, CLUSTER);
});

test("clusterStatus: connected, with counters", async () => {
  const status = await client().clusterStatus(CLUSTER);
  assert.equal(status.clusterId, CLUSTER);
  assert.equal(status.status, "connected");
  assert.equal(typeof status.activeSessions, "number");
  assert.equal(typeof status.queueDepth, "number");
});

test("createDebugSession / execute get pods -A and version / closeSession (the contract's shape)", async () => {
  const c = client();
  const session = await c.createDebugSession(CLUSTER, { metadata: { user: "sdk-typescript-test" } });
  assert.ok(session instanceof DebugSession);
  assert.match(session.sessionId, /^sess_/);
  assert.equal(session.clusterId, CLUSTER);
  assert.equal(session.status, "active");
  try {
    const pods = await c.execute(session.sessionId, "get", ["pods", "-A"]);
    assert.equal(pods.status, "completed", pods.error ?? "");
    assert.equal(pods.exitCode, 0);
    assert.equal(pods.sessionId, session.sessionId);
    assert.equal(pods.clusterId, CLUSTER);
    assert.match(pods.resultId, /^res_/);
    assert.match(pods.output, /^NAMESPACE\s+NAME\s+READY\s+STATUS/);
    const rows = pods.output.trimEnd().split("\n").slice(1);
    assert.ok(rows.length > 0, "the test bed has pods");
    for (const row of rows) assert.match(row, /^\S+\s+\S+\s+\d+\/\d+\s+\S+/, row);

    const version = await c.execute(session.sessionId, "version", []);
    assert.equal(version.status, "completed");
    assert.match(version.output, /Server Version: v\d+\.\d+/);

    // A stored result reads back the same.
    const again = await c.getResult(pods.resultId);
    assert.equal(again.output, pods.output);
    assert.equal(again.raw.result_id, pods.resultId);
  } finally {
    const closed = await c.closeSession(session.sessionId);
    assert.equal(closed.status, "closed");
  }
  const info = await c.getSession(session.sessionId);
  assert.equal(info.status, "closed");
  assert.equal(info.commandsExecuted, 2);
});

test("execute on a session this client did not create looks its cluster up once", async () => {
  const creator = client();
  const session = await creator.createDebugSession(CLUSTER);
  try {
    const rec = recordingFetch();
    const other = client({ fetch: rec.fetch });
    const a = await other.execute(session.sessionId, "version");
    const b = await other.execute(session.sessionId, "get", ["namespaces"]);
    assert.equal(a.status, "completed");
    assert.match(b.output, /\bkube-system\b/);
    const lookups = rec.calls.filter((x) => x.method === "GET" && x.url.endsWith(`/debug/session/${session.sessionId}`));
    assert.equal(lookups.length, 1, `one GET /debug/session/{id}; calls: ${rec.calls.map((x) => `${x.method} ${x.url}`).join(", ")}`);
    assert.equal(rec.calls.filter((x) => x.method === "POST").length, 2);
  } finally {
    await creator.closeSession(session.sessionId);
  }
});

test("withSession runs the callback and closes the session, also when the callback throws", async () => {
  const c = client();
  let seen;
  const output = await c.withSession(CLUSTER, async (session) => {
    seen = session.sessionId;
    assert.equal((await c.getSession(seen)).status, "active");
    return (await session.execute("get", ["namespaces"])).output;
  });
  assert.match(output, /\bdefault\b/);
  assert.equal((await c.getSession(seen)).status, "closed");

  let failing;
  const error = await thrown(() =>
    c.withSession(CLUSTER, async (session) => {
      failing = session.sessionId;
      throw new Error("callback failed");
    }),
  );
  assert.equal(error.message, "callback failed");
  assert.equal((await c.getSession(failing)).status, "closed");
});

test("a write verb is refused: InvalidRequestError (400) naming it", async () => {
  const c = client();
  await c.withSession(CLUSTER, async (session) => {
    const error = await thrown(() => session.execute("delete", ["pods", "--all"]));
    assert.ok(error instanceof InvalidRequestError, `${error.name}: ${error.message}`);
    assert.ok(error instanceof KubelineError);
    assert.equal(error.status, 400);
    assert.equal(error.code, "invalid_request");
    assert.match(error.message, /delete/);
    assert.equal(error.method, "POST");
    assert.equal(error.url, `${c.endpoint}/debug/execute`);
  });
});

test("an unknown cluster: NotFoundError (404)", async () => {
  const c = client();
  const onCreate = await thrown(() => c.createDebugSession("no-such-cluster-sdk-ts"));
  assert.ok(onCreate instanceof NotFoundError, `${onCreate.name}: ${onCreate.message}`);
  assert.equal(onCreate.status, 404);
  assert.equal(onCreate.code, "not_found");
  assert.match(onCreate.message, /no-such-cluster-sdk-ts/);
  const onStatus = await thrown(() => c.clusterStatus("no-such-cluster-sdk-ts"));
  assert.ok(onStatus instanceof NotFoundError);
  const onResult = await thrown(() => c.getResult("res_does_not_exist"));
  assert.ok(onResult instanceof NotFoundError);
});

test("a key granted another cluster only: ForbiddenError (403) with details.code", async () => {
  const c = new Client({ endpoint: ENDPOINT, apiKey: OTHER_KEY });
  const error = await thrown(() => c.createDebugSession(CLUSTER));
  assert.ok(error instanceof ForbiddenError, `${error.name}: ${error.message}`);
  assert.equal(error.status, 403);
  assert.equal(error.code, "forbidden");
  assert.equal(error.details.code, "cluster_not_granted");
  assert.equal(error.detailCode, "cluster_not_granted");
  assert.match(error.message, new RegExp(CLUSTER));
  assert.match(error.correlationId, /\S/);
});

test("a bad key: UnauthorizedError (401)", async () => {
  const c = new Client({ endpoint: ENDPOINT, apiKey: "kl_not-a-real-key" });
  const error = await thrown(() => c.listClusters());
  assert.ok(error instanceof UnauthorizedError, `${error.name}: ${error.message}`);
  assert.equal(error.status, 401);
  assert.equal(error.code, "unauthorized");
  assert.equal(typeof error.detailCode, "string");
  assert.ok(error.message.length > 0);
});

test("a dead endpoint: a connection error naming the URL and the cause, fast", async () => {
  const started = Date.now();
  const c = new Client({ endpoint: DEAD_ENDPOINT, apiKey: API_KEY });
  const error = await thrown(() => c.listClusters());
  const elapsed = Date.now() - started;
  assert.ok(error instanceof KubelineConnectionError, `${error.name}: ${error.message}`);
  assert.equal(error.reason, "refused");
  assert.equal(error.errno, "ECONNREFUSED");
  assert.equal(error.status, undefined);
  assert.equal(error.maybeSent, false);
  assert.equal(error.attempts, 3, "a refused GET is retried (maxRetries 2)");
  assert.ok(error.message.includes(`${c.endpoint}/clusters`), error.message);
  assert.match(error.message, /refused/);
  assert.doesNotMatch(error.message, /fetch failed/);
  assert.ok(elapsed < 5000, `took ${elapsed} ms`);

  const once = await thrown(() => new Client({ endpoint: DEAD_ENDPOINT, apiKey: API_KEY, maxRetries: 0 }).health());
  assert.ok(once instanceof KubelineConnectionError);
  assert.equal(once.attempts, 1);
});

test("429: retried after Retry-After and then succeeds; with maxRetries 0 it throws RateLimitedError", async () => {
  // Burst of 60, then one request a second (GCRA): Retry-After is about one second.
  const key = await createApiKey({
    scope: "read",
    name: "sdk-typescript-rate-limit-test",
    expires_in_seconds: 600,
    rate_limits: { standard: 60 },
  });
  madeKeys.push(key.id);

  const noRetry = new Client({ endpoint: ENDPOINT, apiKey: key.key, maxRetries: 0 });
  let limited;
  for (let i = 0; i < 200 && !limited; i++) {
    try {
      await noRetry.listClusters();
    } catch (error) {
      limited = error;
    }
  }
  assert.ok(limited instanceof RateLimitedError, `${limited?.name}: ${limited?.message}`);
  assert.equal(limited.status, 429);
  assert.equal(limited.code, "rate_limited");
  assert.equal(typeof limited.retryAfter, "number");
  assert.ok(limited.retryAfter >= 1 && limited.retryAfter <= 2, `retryAfter ${limited.retryAfter}`);
  assert.equal(limited.limit, 60);
  assert.equal(limited.window, "1m");
  assert.equal(limited.rateLimit?.remaining, 0);

  const rec = recordingFetch();
  const retrying = new Client({ endpoint: ENDPOINT, apiKey: key.key, fetch: rec.fetch });
  const started = Date.now();
  const clusters = await retrying.listClusters();
  const elapsed = Date.now() - started;
  assert.ok(clusters.some((c) => c.clusterId === CLUSTER));
  assert.deepEqual(rec.calls.map((c) => c.status), [429, 200]);
  const waited = rec.calls[1].at - rec.calls[0].at;
  assert.ok(waited >= 900, `waited ${waited} ms before the retry (Retry-After ~1 s)`);
  assert.ok(elapsed < 5000, `took ${elapsed} ms`);
});

test("windowed reads: getResult with offset/limit, and readOutput reassembles the whole output", async () => {
  const c = client();
  await c.withSession(CLUSTER, async (session) => {
    const result = await session.execute("get", ["pods", "-A", "-o", "yaml"]);
    assert.equal(result.status, "completed", result.error ?? "");
    assert.equal(result.truncated, null);
    const full = result.output;
    const totalBytes = Buffer.byteLength(full);
    assert.ok(totalBytes > 3 * 4096, `the output is large enough to need several windows (${totalBytes} bytes)`);

    const first = await c.getResult(result.resultId, { offset: 0, limit: 4096 });
    assert.ok(first.window, "a windowed read carries `window` (needs a broker with windowed results)");
    assert.equal(first.window.offset, 0);
    assert.equal(first.window.total_bytes, totalBytes);
    assert.ok(first.window.length > 0 && first.window.length <= 4096, `length ${first.window.length}`);
    assert.equal(Buffer.byteLength(first.output), first.window.length);
    assert.equal(first.window.next_offset, first.window.length);
    assert.equal(first.output, Buffer.from(full).subarray(0, first.window.length).toString());

    const second = await c.getResult(result.resultId, { offset: first.window.next_offset, limit: 4096 });
    assert.equal(second.window.offset, first.window.next_offset);
    assert.equal(
      second.output,
      Buffer.from(full).subarray(second.window.offset, second.window.offset + second.window.length).toString(),
    );

    const rec = recordingFetch();
    const reader = client({ fetch: rec.fetch });
    const whole = await reader.readOutput(result.resultId, { windowBytes: 4096 });
    assert.equal(whole, full);
    assert.ok(rec.calls.length >= 4, `read in ${rec.calls.length} windows`);

    const past = await thrown(() => c.getResult(result.resultId, { offset: totalBytes + 10 }));
    assert.ok(past instanceof InvalidRequestError, `${past.name}: ${past.message}`);
  });
});

test("a tiny timeout: KubelineTimeoutError naming the URL; execute is not resent once it may have been sent", async () => {
  const c = client();
  await c.withSession(CLUSTER, async (session) => {
    const rec = recordingFetch();
    const impatient = client({ fetch: rec.fetch, maxRetries: 2 });
    const error = await thrown(() =>
      impatient.execute(session.sessionId, "get", ["pods", "-A", "-o", "yaml"], { clusterId: CLUSTER, timeout: 1 }),
    );
    assert.ok(error instanceof KubelineTimeoutError, `${error.name}: ${error.message}`);
    assert.ok(error instanceof KubelineConnectionError);
    assert.equal(error.code, "connection_timeout");
    assert.equal(error.reason, "timeout");
    assert.equal(error.timeoutMs, 1);
    assert.equal(error.maybeSent, true);
    assert.equal(error.attempts, 1);
    assert.equal(rec.calls.length, 1, "POST /debug/execute sent once, never again");
    assert.ok(error.message.includes(`${impatient.endpoint}/debug/execute`), error.message);
    assert.match(error.message, /within 1 ms/);
    assert.match(error.message, /not sent again/);

  });
});
