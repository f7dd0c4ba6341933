// Pure unit tests of the client's own logic (retries, backoff, error mapping, timeouts, windowed
// reads) against a local fake HTTP server, through the ESM build. The live broker is exercised
// by live.test.mjs and cjs.test.cjs.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { inspect } from "node:util";
import {
  Client,
  ERROR_CLASSES,
  InternalServerError,
  KubelineAbortError,
  KubelineConnectionError,
  KubelineError,
  KubelineTimeoutError,
  RateLimitedError,
  ServiceUnavailableError,
  VERSION,
  backoffMs,
  parseRetryAfter,
} from "kubeline";

const here = dirname(fileURLToPath(import.meta.url));
const pkgDir = join(here, "..");

const servers = [];
after(() =>
  Promise.all(
    servers.map((s) => {
      s.closeAllConnections();
      return new Promise((r) => s.close(r));
    }),
  ),
);

/** A local HTTP server; `handler(req, body, n)` answers request number `n` (0-based). */
async function fake(handler) {
  const requests = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString();
      const n = requests.length;
      requests.push({ method: req.method, url: req.url, headers: req.headers, body });
      handler(req, res, body, n);
    });
  });
  server.keepAliveTimeout = 100;
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  servers.push(server);
  server.unref();
  return { url: `http://127.0.0.1:${server.address().port}`, requests, server };
}

function json(res, status, body, headers = {}) {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

const RESULT = {
  result_id: "res_1",
  session_id: "sess_1",
  cluster_id: "c1",
  status: "completed",
  output: "ok\n",
  error: null,
  exit_code: 0,
  execution_time_ms: 1,
  executed_at: "2026-01-01T00:00:00Z",
  correlation_id: "corr_1",
};

async function thrown(fn) {
  try {
    await fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected an error, but the call succeeded");
}

test("one error class per code of the contract's ErrorCode enum (broker/openapi.json)", () => {
  const doc = JSON.parse(readFileSync(join(pkgDir, "..", "..", "broker", "openapi.json"), "utf8"));
  const codes = doc.components.schemas.ErrorCode.enum;
  assert.deepEqual(Object.keys(ERROR_CLASSES).sort(), [...codes].sort());
  const classes = new Set(Object.values(ERROR_CLASSES));
  assert.equal(classes.size, codes.length, "each code has its own class");
  for (const Cls of classes) assert.ok(Cls.prototype instanceof KubelineError);
});

test("VERSION is package.json's version", () => {
  const pkg = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8"));
  assert.equal(VERSION, pkg.version);
});

test("configuration errors say what to set", async () => {
  const saved = process.env.KUBELINE_ENDPOINT;
  delete process.env.KUBELINE_ENDPOINT;
  try {
    assert.throws(() => new Client(), (e) => e instanceof KubelineError && e.code === "configuration_error" && /KUBELINE_ENDPOINT/.test(e.message));
  } finally {
    if (saved !== undefined) process.env.KUBELINE_ENDPOINT = saved;
  }
  assert.throws(() => new Client({ endpoint: "broker:8080" }), /not an http:\/\/ or https:\/\/ URL/);
  assert.throws(() => new Client({ endpoint: "::nonsense" }), /is not a URL/);
  assert.throws(() => new Client({ endpoint: "http://x", timeout: -1 }), /timeout must be a number ≥ 0/);
  const savedKey = process.env.KUBELINE_API_KEY;
  delete process.env.KUBELINE_API_KEY;
  try {
    const error = await thrown(() => new Client({ endpoint: "http://127.0.0.1:9" }).listClusters());
    assert.equal(error.code, "configuration_error");
    assert.match(error.message, /No API key for GET \/clusters.*KUBELINE_API_KEY/);
  } finally {
    if (savedKey !== undefined) process.env.KUBELINE_API_KEY = savedKey;
  }
  const c = new Client({ endpoint: "http://127.0.0.1:9", apiKey: "k" });
  await assert.rejects(c.execute("sess_1", "get", "pods -A"), /array of strings.*never splits a command line/);
});

test("the API key never shows in console.log / JSON of the client or a session", async () => {
  const srv = await fake((req, res) =>
    json(res, 201, { session_id: "sess_1", cluster_id: "c1", status: "active", created_at: "t", expires_at: "t" }),
  );
  const c = new Client({ endpoint: srv.url, apiKey: "kl_secret_value" });
  const session = await c.createDebugSession("c1");
  for (const text of [inspect(c, { depth: 5 }), JSON.stringify(c), inspect(session, { depth: 5 }), JSON.stringify(session)]) {
    assert.doesNotMatch(text, /kl_secret_value/);
  }
  assert.deepEqual(JSON.parse(JSON.stringify(session)), { sessionId: "sess_1", clusterId: "c1", status: "active", createdAt: "t", expiresAt: "t" });
});

test("headers: bearer key, JSON body, correlation id, service identity, user agent", async () => {
  const srv = await fake((req, res) => json(res, 200, RESULT));
  const c = new Client({ endpoint: srv.url + "/", apiKey: "k1", serviceIdentity: "my-agent", headers: { "X-Extra": "1" } });
  const r = await c.execute("sess_1", "get", ["pods", "-A"], { clusterId: "c1", correlationId: "trace-9", commandTimeout: 12, maxOutputBytes: 1000 });
  assert.equal(r.output, "ok\n");
  assert.equal(r.exitCode, 0);
  const [req] = srv.requests;
  assert.equal(req.url, "/debug/execute");
  assert.equal(req.headers.authorization, "Bearer k1");
  assert.equal(req.headers["content-type"], "application/json");
  assert.equal(req.headers["x-correlation-id"], "trace-9");
  assert.equal(req.headers["x-service-identity"], "my-agent");
  assert.equal(req.headers["x-extra"], "1");
  assert.match(req.headers["user-agent"], new RegExp(`^kubeline-typescript/${VERSION.replace(/\./g, "\\.")} node/`));
  assert.deepEqual(JSON.parse(req.body), {
    cluster_id: "c1",
    session_id: "sess_1",
    command_type: "get",
    args: ["pods", "-A"],
    timeout: 12,
    max_output_bytes: 1000,
  });
});

test("503 is retried with exponential backoff, then the answer is returned", async () => {
  const srv = await fake((req, res, body, n) =>
    n < 2
      ? json(res, 503, { error: "service_unavailable", message: "no agent linked" })
      : json(res, 200, { clusters: [] }),
  );
  const c = new Client({ endpoint: srv.url, apiKey: "k" });
  const started = Date.now();
  assert.deepEqual(await c.listClusters(), []);
  const elapsed = Date.now() - started;
  assert.equal(srv.requests.length, 3);
  // 0.5 s and 1 s, each minus up to 25 % jitter.
  assert.ok(elapsed >= 1100 && elapsed < 3000, `backoff took ${elapsed} ms`);
});

test("429 honours Retry-After; maxRetries 0 throws RateLimitedError; a Retry-After past maxRetryWait is not waited for", async () => {
  const limited = (res) =>
    json(
      res,
      429,
      { error: "rate_limited", message: "Rate limit exceeded", details: { limit: 5, window: "1m", retry_after: 1 } },
      { "retry-after": "1", "x-ratelimit-limit": "5", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "1800000000" },
    );
  const srv = await fake((req, res, body, n) => (n === 0 ? limited(res) : json(res, 200, { clusters: [] })));
  const started = Date.now();
  await new Client({ endpoint: srv.url, apiKey: "k" }).listClusters();
  const waited = Date.now() - started;
  assert.equal(srv.requests.length, 2);
  assert.ok(waited >= 1000 && waited < 1600, `waited ${waited} ms for Retry-After: 1`);

  const always = await fake((req, res) => limited(res));
  const error = await thrown(() => new Client({ endpoint: always.url, apiKey: "k", maxRetries: 0 }).listClusters());
  assert.ok(error instanceof RateLimitedError);
  assert.equal(error.retryAfter, 1);
  assert.equal(error.limit, 5);
  assert.equal(error.window, "1m");
  assert.deepEqual(error.rateLimit, { limit: 5, remaining: 0, reset: 1800000000 });
  assert.equal(always.requests.length, 1);

  const long = await fake((req, res) =>
    json(res, 429, { error: "rate_limited", message: "slow down", details: { retry_after: 120 } }, { "retry-after": "120" }),
  );
  const t = Date.now();
  const tooLong = await thrown(() => new Client({ endpoint: long.url, apiKey: "k" }).listClusters());
  assert.ok(tooLong instanceof RateLimitedError);
  assert.equal(tooLong.retryAfter, 120);
  assert.equal(long.requests.length, 1);
  assert.ok(Date.now() - t < 500);
});

test("execute is not resent after a connection that broke once the request was sent; a GET is", async () => {
  const srv = await fake((req, res) => req.socket.destroy());
  const c = new Client({ endpoint: srv.url, apiKey: "k", maxRetries: 2 });
  const error = await thrown(() => c.execute("sess_1", "version", [], { clusterId: "c1" }));
  assert.ok(error instanceof KubelineConnectionError, `${error.name}: ${error.message}`);
  assert.equal(error.reason, "reset");
  assert.equal(error.maybeSent, true);
  assert.equal(error.attempts, 1);
  assert.equal(srv.requests.length, 1);
  assert.match(error.message, /the command may have run.*not sent again/);
  assert.ok(error.message.includes(`${srv.url}/debug/execute`));

  const flaky = await fake((req, res, body, n) => (n < 2 ? req.socket.destroy() : json(res, 200, { clusters: [] })));
  assert.deepEqual(await new Client({ endpoint: flaky.url, apiKey: "k" }).listClusters(), []);
  assert.equal(flaky.requests.length, 3);
});

test("a refused connection never reached the broker: execute is retried too", async () => {
  const srv = await fake(() => {});
  const { port } = srv.server.address();
  await new Promise((r) => srv.server.close(r));
  const c = new Client({ endpoint: `http://127.0.0.1:${port}`, apiKey: "k", maxRetries: 1 });
  const error = await thrown(() => c.execute("sess_1", "version", [], { clusterId: "c1" }));
  assert.ok(error instanceof KubelineConnectionError);
  assert.equal(error.reason, "refused");
  assert.equal(error.maybeSent, false);
  assert.equal(error.attempts, 2);
  assert.match(error.message, /connection refused \(ECONNREFUSED\)/);
  assert.match(error.message, /\(after 2 attempts\)/);
});

test("an unresolvable host: a DNS error naming the host", async () => {
  const error = await thrown(() => new Client({ endpoint: "http://kubeline-broker.invalid:8080", apiKey: "k", maxRetries: 0 }).listClusters());
  assert.ok(error instanceof KubelineConnectionError, `${error.name}: ${error.message}`);
  assert.equal(error.reason, "dns");
  assert.match(error.message, /"kubeline-broker\.invalid" could not be resolved/);
});

test("a broker that never answers: KubelineTimeoutError after `timeout`, a GET is retried", async () => {
  const srv = await fake(() => {}); // never answers
  const c = new Client({ endpoint: srv.url, timeout: 100, maxRetries: 1 });
  const started = Date.now();
  const error = await thrown(() => c.health());
  const elapsed = Date.now() - started;
  assert.ok(error instanceof KubelineTimeoutError, `${error.name}: ${error.message}`);
  assert.equal(error.code, "connection_timeout");
  assert.equal(error.timeoutMs, 100);
  assert.equal(error.attempts, 2);
  assert.equal(srv.requests.length, 2);
  assert.match(error.message, /GET http:\/\/127\.0\.0\.1:\d+\/health failed \(after 2 attempts\): no answer within 100 ms/);
  assert.ok(elapsed >= 500 && elapsed < 2000, `took ${elapsed} ms`);
});

test("the caller's signal aborts a call", async () => {
  const srv = await fake(() => {});
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 50);
  const error = await thrown(() => new Client({ endpoint: srv.url, apiKey: "k" }).listClusters({ signal: controller.signal }));
  assert.ok(error instanceof KubelineAbortError, `${error.name}: ${error.message}`);
  assert.equal(error.code, "aborted");
});

test("error answers: class by code, request id of a 500, unknown codes and non-JSON bodies", async () => {
  const srv = await fake((req, res) => {
    if (req.url === "/clusters/a/status") return json(res, 500, { error: "internal_error", message: "An unexpected error occurred", details: { request_id: "req_abc" } });
    if (req.url === "/clusters/b/status") return json(res, 418, { error: "teapot", message: "I am a teapot" });
    if (req.url === "/clusters/c/status") {
      res.writeHead(502, { "content-type": "text/html" });
      return res.end("<html>Bad Gateway</html>");
    }
    if (req.url === "/clusters/d/status") {
      res.writeHead(200, { "content-type": "text/html" });
      return res.end("<html>hello</html>");
    }
    json(res, 503, { error: "service_unavailable", message: "Cluster agent is not connected", details: { cluster_id: "e" } }, { "x-correlation-id": "corr_9" });
  });
  const c = new Client({ endpoint: srv.url, apiKey: "k", maxRetries: 0 });

  const e500 = await thrown(() => c.clusterStatus("a"));
  assert.ok(e500 instanceof InternalServerError);
  assert.equal(e500.requestId, "req_abc");

  const unknown = await thrown(() => c.clusterStatus("b"));
  assert.equal(unknown.constructor, KubelineError);
  assert.equal(unknown.code, "teapot");
  assert.equal(unknown.status, 418);

  const html = await thrown(() => c.clusterStatus("c"));
  assert.equal(html.code, "invalid_response");
  assert.equal(html.status, 502);
  assert.match(html.message, /answered 502 with a body that is not JSON \(text\/html: "<html>Bad Gateway<\/html>"\).*proxy/);

  const notBroker = await thrown(() => c.clusterStatus("d"));
  assert.equal(notBroker.code, "invalid_response");
  assert.match(notBroker.message, /Is http:\/\/127\.0\.0\.1:\d+ a kubeline broker\?/);

  const e503 = await thrown(() => c.clusterStatus("e"));
  assert.ok(e503 instanceof ServiceUnavailableError);
  assert.equal(e503.correlationId, "corr_9");
  assert.deepEqual(e503.details, { cluster_id: "e" });
});

test("an unhealthy broker's 503 health answer is returned, not thrown", async () => {
  const srv = await fake((req, res) =>
    json(res, 503, { status: "unhealthy", version: "0.1.0", timestamp: "t", uptime_seconds: 5, reason: "store down" }),
  );
  const h = await new Client({ endpoint: srv.url }).health();
  assert.equal(h.status, "unhealthy");
  assert.equal(h.reason, "store down");
  assert.equal(srv.requests.length, 1);
});

test("readOutput: follows next_offset, checks the total, and accepts a broker without windows", async () => {
  const full = "line one\nline two é\nline three\n";
  const bytes = Buffer.from(full);
  const windowed = await fake((req, res) => {
    const q = new URL(req.url, "http://x").searchParams;
    const offset = Number(q.get("offset") ?? 0);
    const limit = Number(q.get("limit") ?? 65536);
    let end = Math.min(offset + limit, bytes.length);
    const nl = bytes.lastIndexOf(0x0a, end - 1);
    if (end < bytes.length && nl >= offset) end = nl + 1; // end on a line, as the broker does
    json(res, 200, {
      ...RESULT,
      output: bytes.subarray(offset, end).toString(),
      window: { offset, length: end - offset, total_bytes: bytes.length, next_offset: end < bytes.length ? end : null },
    });
  });
  const c = new Client({ endpoint: windowed.url, apiKey: "k" });
  assert.equal(await c.readOutput("res_1", { windowBytes: 12 }), full);
  assert.deepEqual(
    windowed.requests.map((r) => r.url),
    ["/debug/result/res_1?offset=0&limit=12", "/debug/result/res_1?offset=9&limit=12", "/debug/result/res_1?offset=21&limit=12"],
  );
  const w = await c.getResult("res_1", { offset: 9, limit: 12 });
  assert.deepEqual(w.window, { offset: 9, length: 12, total_bytes: bytes.length, next_offset: 21 });
  assert.equal(w.output, "line two é\n");

  const lying = await fake((req, res) =>
    json(res, 200, { ...RESULT, output: "abc", window: { offset: 0, length: 3, total_bytes: 10, next_offset: null } }),
  );
  const bad = await thrown(() => new Client({ endpoint: lying.url, apiKey: "k" }).readOutput("res_1"));
  assert.equal(bad.code, "invalid_response");
  assert.match(bad.message, /add up to 3 bytes, not its 10 bytes/);

  const old = await fake((req, res) => json(res, 200, { ...RESULT, output: full }));
  assert.equal(await new Client({ endpoint: old.url, apiKey: "k" }).readOutput("res_1"), full);
  assert.equal(old.requests.length, 1);
});

test("withSession closes the session when the callback throws, and rethrows the callback's error", async () => {
  const srv = await fake((req, res) => {
    if (req.method === "POST") return json(res, 201, { session_id: "sess_9", cluster_id: "c1", status: "active", created_at: "t", expires_at: "t" });
    return json(res, 200, { session_id: "sess_9", status: "closed", closed_at: "t" });
  });
  const c = new Client({ endpoint: srv.url, apiKey: "k" });
  await assert.rejects(
    c.withSession("c1", () => {
      throw new Error("boom");
    }),
    /boom/,
  );
  assert.deepEqual(srv.requests.map((r) => `${r.method} ${r.url}`), ["POST /debug/session", "DELETE /debug/session/sess_9"]);
  assert.equal(await c.withSession("c1", (s) => s.sessionId), "sess_9");
});

test("parseRetryAfter and backoffMs", () => {
  assert.equal(parseRetryAfter("3"), 3000);
  assert.equal(parseRetryAfter("0.5"), 500);
  assert.equal(parseRetryAfter(null), undefined);
  assert.equal(parseRetryAfter("soon"), undefined);
  const date = new Date(Date.now() + 10_000).toUTCString();
  const ms = parseRetryAfter(date);
  assert.ok(ms > 8000 && ms <= 10_000, String(ms));
  for (let attempt = 0; attempt < 8; attempt++) {
    const base = Math.min(500 * 2 ** attempt, 8000);
    const d = backoffMs(attempt);
    assert.ok(d <= base && d >= base * 0.75, `attempt ${attempt}: ${d}`);
  }
});
