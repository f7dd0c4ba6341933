import {
  KubelineAbortError,
  KubelineConnectionError,
  KubelineError,
  KubelineTimeoutError,
  RateLimitedError,
  errorClassFor,
  type ConnectionFailure,
} from "./errors.js";
import type {
  ClusterListModel,
  ClusterStatusInfo,
  ClusterStatusInfoModel,
  ClusterSummary,
  CommandResult,
  CommandResultModel,
  CommandType,
  CreateSessionOptions,
  CreateSessionRequest,
  ExecuteOptions,
  ExecuteRequest,
  GetResultOptions,
  Health,
  HealthModel,
  ListSessionsOptions,
  RateLimitInfo,
  ReadOutputOptions,
  RequestOptions,
  SessionClosed,
  SessionClosedModel,
  SessionCreatedModel,
  SessionData,
  SessionInfo,
  SessionInfoModel,
  SessionList,
  SessionListModel,
  SessionStatus,
} from "./types.js";
import { VERSION } from "./version.js";

/** Milliseconds one HTTP attempt may take unless told otherwise. */
export const DEFAULT_TIMEOUT_MS = 60_000;
/** Retries of a failed call unless told otherwise (so at most 3 attempts). */
export const DEFAULT_MAX_RETRIES = 2;
/** Longest `Retry-After` the client waits for unless told otherwise, in milliseconds. */
export const DEFAULT_MAX_RETRY_WAIT_MS = 60_000;
/** The broker's default command timeout (seconds), used to size execute's HTTP timeout. */
const BROKER_DEFAULT_COMMAND_TIMEOUT_S = 30;
/** Extra time execute's HTTP attempt gets beyond the command's own timeout. */
const EXECUTE_TIMEOUT_MARGIN_MS = 5_000;
/** Window size of `readOutput` unless told otherwise. */
const DEFAULT_WINDOW_BYTES = 1024 * 1024;
/** Sessions whose cluster the client remembers (oldest forgotten first). */
const SESSION_CACHE_SIZE = 1024;

export interface ClientOptions {
  /** Base URL of the broker, e.g. `http://127.0.0.1:8080`. Default: `KUBELINE_ENDPOINT`. */
  endpoint?: string;
  /** API key (or JWT), sent as `Authorization: Bearer …`. Default: `KUBELINE_API_KEY`. */
  apiKey?: string;
  /** Milliseconds one HTTP attempt may take, answer included (default 60 000). */
  timeout?: number;
  /** Retries after 429, 503 and connection failures (default 2). */
  maxRetries?: number;
  /** A `Retry-After` longer than this (milliseconds, default 60 000) is not waited for: the error is thrown. */
  maxRetryWait?: number;
  /** Sent as `X-Service-Identity` (the broker logs it). */
  serviceIdentity?: string;
  /** Headers sent with every request. */
  headers?: Record<string, string>;
  /** The `fetch` to use (default: the global one). */
  fetch?: typeof fetch;
}

type Method = "GET" | "POST" | "DELETE";

interface Call {
  method: Method;
  /** Path below the endpoint, e.g. `/debug/session`. */
  path: string;
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  /** Needs the API key. */
  auth: boolean;
  /**
   * Safe to send again after a failure that may have reached the broker (a connection reset,
   * a timeout). Calls that are not (creating a session, executing a command) are retried only
   * after failures that certainly did not reach it (refused, DNS) and after 429/503 answers.
   */
  idempotent: boolean;
  opts?: RequestOptions;
  /** HTTP timeout of this call when `opts.timeout` is not given. */
  defaultTimeoutMs?: number;
  /** Statuses other than 2xx whose body is the answer (health's 503). */
  acceptStatus?: number[];
}

interface Answer {
  status: number;
  headers: Headers;
  body: unknown;
}

/** A failure without an answer, classified. */
interface NoAnswer {
  kind: "no-answer";
  reason: ConnectionFailure;
  errno?: string;
  maybeSent: boolean;
  cause: unknown;
  timeoutMs?: number;
}

interface UserAbort {
  kind: "aborted";
  cause: unknown;
}

type EndpointSource = "option" | "KUBELINE_ENDPOINT";

function env(name: string): string | undefined {
  const value = typeof process !== "undefined" ? process.env?.[name] : undefined;
  return value === undefined || value === "" ? undefined : value;
}

/**
 * Client of the kubeline broker's REST API.
 *
 * ```js
 * const client = new Client({ endpoint: "http://127.0.0.1:8080", apiKey: "…" });
 * const out = await client.withSession("prod", (s) => s.execute("get", ["pods", "-A"]));
 * ```
 */
export class Client {
  /** Base URL of the broker, without a trailing `/`. */
  readonly endpoint: string;
  readonly timeout: number;
  readonly maxRetries: number;
  readonly maxRetryWait: number;

  // Private fields: never shown by console.log / util.inspect of the client.
  readonly #apiKey: string | undefined;
  readonly #endpointSource: EndpointSource;
  readonly #headers: Record<string, string>;
  readonly #fetch: typeof fetch;
  readonly #sessionClusters = new Map<string, string>();

  constructor(options: ClientOptions = {}) {
    const given = options.endpoint ?? env("KUBELINE_ENDPOINT");
    this.#endpointSource = options.endpoint !== undefined ? "option" : "KUBELINE_ENDPOINT";
    if (given === undefined || given.trim() === "") {
      throw configError(
        "No kubeline broker endpoint: pass `endpoint` to new Client({ endpoint: 'http://HOST:PORT', … }) or set KUBELINE_ENDPOINT.",
      );
    }
    this.endpoint = parseEndpoint(given.trim(), this.#endpointSource);
    this.#apiKey = options.apiKey ?? env("KUBELINE_API_KEY");
    this.timeout = nonNegative(options.timeout, DEFAULT_TIMEOUT_MS, "timeout");
    this.maxRetries = Math.floor(nonNegative(options.maxRetries, DEFAULT_MAX_RETRIES, "maxRetries"));
    this.maxRetryWait = nonNegative(options.maxRetryWait, DEFAULT_MAX_RETRY_WAIT_MS, "maxRetryWait");
    const fetchImpl = options.fetch ?? (typeof fetch === "function" ? fetch : undefined);
    if (fetchImpl === undefined) {
      throw configError("No global fetch in this runtime: use Node.js 20 or later, or pass `fetch` to new Client({ … }).");
    }
    this.#fetch = fetchImpl;
    const runtime = typeof process !== "undefined" && process.versions?.node ? ` node/${process.versions.node}` : "";
    this.#headers = {
      accept: "application/json",
      "user-agent": `kubeline-typescript/${VERSION}${runtime}`,
      ...(options.serviceIdentity ? { "x-service-identity": options.serviceIdentity } : {}),
      ...lowerKeys(options.headers),
    };
  }

  // ----------------------------------------------------------------------------------------------
  // Sessions

  /** `POST /debug/session`: opens a debug session on a cluster. Close it with `closeSession` (or use `withSession`). */
  async createDebugSession(clusterId: string, opts: CreateSessionOptions = {}): Promise<DebugSession> {
    requireString(clusterId, "clusterId");
    const body: CreateSessionRequest = { cluster_id: clusterId };
    if (opts.metadata !== undefined) body.metadata = opts.metadata;
    const raw = (await this.#request({
      method: "POST",
      path: "/debug/session",
      body,
      auth: true,
      idempotent: false,
      opts,
    })) as SessionCreatedModel;
    this.#rememberSession(raw.session_id, raw.cluster_id);
    return new DebugSession(this, raw);
  }

  /** `GET /debug/session/{id}`. */
  async getSession(sessionId: string, opts: RequestOptions = {}): Promise<SessionInfo> {
    requireString(sessionId, "sessionId");
    const raw = (await this.#request({
      method: "GET",
      path: `/debug/session/${encodeURIComponent(sessionId)}`,
      auth: true,
      idempotent: true,
      opts,
    })) as SessionInfoModel;
    this.#rememberSession(raw.session_id, raw.cluster_id);
    return {
      sessionId: raw.session_id,
      clusterId: raw.cluster_id,
      status: raw.status,
      createdAt: raw.created_at,
      expiresAt: raw.expires_at,
      lastActivity: raw.last_activity,
      commandsExecuted: raw.commands_executed,
      raw,
    };
  }

  /** `DELETE /debug/session/{id}`: closes the session (closing a closed one is fine). */
  async closeSession(sessionId: string, opts: RequestOptions = {}): Promise<SessionClosed> {
    requireString(sessionId, "sessionId");
    const raw = (await this.#request({
      method: "DELETE",
      path: `/debug/session/${encodeURIComponent(sessionId)}`,
      auth: true,
      idempotent: true,
      opts,
    })) as SessionClosedModel;
    this.#sessionClusters.delete(sessionId);
    return { sessionId: raw.session_id, status: raw.status, closedAt: raw.closed_at, raw };
  }

  /** `GET /debug/sessions`: the caller's sessions (a cluster admin: all of that cluster's). */
  async listSessions(opts: ListSessionsOptions = {}): Promise<SessionList> {
    const raw = (await this.#request({
      method: "GET",
      path: "/debug/sessions",
      query: { cluster_id: opts.clusterId, status: opts.status, limit: opts.limit },
      auth: true,
      idempotent: true,
      opts,
    })) as SessionListModel;
    return {
      sessions: raw.sessions.map((s) => ({
        sessionId: s.session_id,
        clusterId: s.cluster_id,
        status: s.status,
        createdAt: s.created_at,
        lastActivity: s.last_activity,
        raw: s,
      })),
      total: raw.total,
      raw,
    };
  }

  /**
   * Opens a session on `clusterId`, runs `fn` with it and closes the session whatever happens
   * (an error of `fn` is rethrown after the close). Returns what `fn` returns.
   */
  async withSession<T>(
    clusterId: string,
    fn: (session: DebugSession) => T | Promise<T>,
    opts: CreateSessionOptions = {},
  ): Promise<T> {
    if (typeof fn !== "function") {
      throw new TypeError("withSession(clusterId, fn): fn must be a function that takes the session");
    }
    const session = await this.createDebugSession(clusterId, opts);
    let result: T;
    try {
      result = await fn(session);
    } catch (error) {
      // The callback's error is the one that matters; a failed close is secondary (the session
      // expires by itself), so it is attached rather than thrown.
      try {
        await this.closeSession(session.sessionId, closeOptions(opts));
      } catch (closeError) {
        if (error instanceof Error && !(error as { closeError?: unknown }).closeError) {
          Object.defineProperty(error, "closeError", { value: closeError, enumerable: false });
        }
      }
      throw error;
    }
    try {
      await this.closeSession(session.sessionId, closeOptions(opts));
    } catch (closeError) {
      // Already gone (expired and collected): nothing left to close.
      if (!(closeError instanceof KubelineError && closeError.status === 404)) throw closeError;
    }
    return result;
  }

  // ----------------------------------------------------------------------------------------------
  // Commands and results

  /**
   * `POST /debug/execute`: runs a read-only kubectl command in a session and waits for its result.
   *
   * A command kubectl itself would fail (NotFound, Forbidden, a usage error) is a result with
   * `status: "failed"`, not an exception. Refused commands (write verbs, forbidden flags) throw
   * `InvalidRequestError`.
   *
   * Retries: after a 429 or 503 answer (the broker did not run the command), and after a
   * connection failure that certainly happened before the request was sent (refused, DNS). Never
   * after a failure once the request may have been sent (a reset connection, a timeout): the
   * broker may already have queued the command, and sending it again would run it twice.
   */
  async execute(
    sessionId: string,
    type: CommandType,
    args: readonly string[] = [],
    opts: ExecuteOptions = {},
  ): Promise<CommandResult> {
    requireString(sessionId, "sessionId");
    requireString(type, "type");
    if (!Array.isArray(args) || args.some((a) => typeof a !== "string")) {
      throw new TypeError(
        `execute(sessionId, type, args): args must be an array of strings, e.g. ["pods", "-A"]` +
          (typeof args === "string" ? ` (got the string ${JSON.stringify(args)}: kubeline never splits a command line)` : ""),
      );
    }
    const clusterId = opts.clusterId ?? (await this.#clusterOfSession(sessionId, opts));
    const body: ExecuteRequest = {
      cluster_id: clusterId,
      session_id: sessionId,
      command_type: type,
      args: [...args],
    };
    if (opts.commandTimeout !== undefined) body.timeout = opts.commandTimeout;
    if (opts.maxOutputBytes !== undefined) body.max_output_bytes = opts.maxOutputBytes;
    const commandMs = (opts.commandTimeout ?? BROKER_DEFAULT_COMMAND_TIMEOUT_S) * 1000;
    const raw = (await this.#request({
      method: "POST",
      path: "/debug/execute",
      body,
      auth: true,
      idempotent: false,
      opts,
      defaultTimeoutMs: Math.max(this.timeout, commandMs + EXECUTE_TIMEOUT_MARGIN_MS),
    })) as CommandResultModel;
    return toCommandResult(raw);
  }

  /**
   * `GET /debug/result/{id}`: a stored result again (`pending` while it runs). With `offset`
   * and/or `limit`, `output` holds only that window of bytes and `window` says where it is.
   */
  async getResult(resultId: string, opts: GetResultOptions = {}): Promise<CommandResult> {
    requireString(resultId, "resultId");
    const raw = (await this.#request({
      method: "GET",
      path: `/debug/result/${encodeURIComponent(resultId)}`,
      query: { offset: opts.offset, limit: opts.limit },
      auth: true,
      idempotent: true,
      opts,
    })) as CommandResultModel;
    return toCommandResult(raw);
  }

  /**
   * The whole stored output of a result, read window by window (so no single answer is larger
   * than `windowBytes`). A result cut by its output budget stays cut (`truncated` of the result).
   */
  async readOutput(resultId: string, opts: ReadOutputOptions = {}): Promise<string> {
    requireString(resultId, "resultId");
    const { windowBytes = DEFAULT_WINDOW_BYTES, ...requestOpts } = opts;
    const parts: string[] = [];
    let offset = 0;
    let total: number | undefined;
    for (;;) {
      const r = await this.getResult(resultId, { ...requestOpts, offset, limit: windowBytes });
      const w = r.window;
      if (w === null) {
        if (offset === 0) return r.output; // a broker without windowed reads answers the whole output
        throw invalidResponse(`a window of result ${resultId} at offset ${offset} came without its \`window\``);
      }
      if (w.offset !== offset) {
        throw invalidResponse(`asked result ${resultId} for the window at offset ${offset}, got offset ${w.offset}`);
      }
      total ??= w.total_bytes;
      parts.push(r.output);
      if (w.next_offset === null) break;
      if (w.next_offset <= offset) {
        throw invalidResponse(`the window of result ${resultId} at offset ${offset} points back to ${w.next_offset}`);
      }
      offset = w.next_offset;
    }
    const output = parts.join("");
    const bytes = new TextEncoder().encode(output).length;
    if (total !== undefined && bytes !== total) {
      throw invalidResponse(`the windows of result ${resultId} add up to ${bytes} bytes, not its ${total} bytes`);
    }
    return output;
  }

  // ----------------------------------------------------------------------------------------------
  // Clusters and health

  /** `GET /clusters`: the clusters this credential reaches. */
  async listClusters(opts: RequestOptions = {}): Promise<ClusterSummary[]> {
    const raw = (await this.#request({ method: "GET", path: "/clusters", auth: true, idempotent: true, opts })) as ClusterListModel;
    return raw.clusters.map((c) => ({
      clusterId: c.cluster_id,
      name: c.name,
      status: c.status,
      agentVersion: c.agent_version,
      lastSeen: c.last_seen,
      raw: c,
    }));
  }

  /** `GET /clusters/{id}/status`. */
  async clusterStatus(clusterId: string, opts: RequestOptions = {}): Promise<ClusterStatusInfo> {
    requireString(clusterId, "clusterId");
    const raw = (await this.#request({
      method: "GET",
      path: `/clusters/${encodeURIComponent(clusterId)}/status`,
      auth: true,
      idempotent: true,
      opts,
    })) as ClusterStatusInfoModel;
    return {
      clusterId: raw.cluster_id,
      status: raw.status,
      agentVersion: raw.agent_version,
      kubernetesVersion: raw.kubernetes_version ?? null,
      lastSeen: raw.last_seen,
      activeSessions: raw.active_sessions,
      queueDepth: raw.queue_depth,
      raw,
    };
  }

  /**
   * `GET /health` (no credential needed). An unhealthy broker answers 503 with the same body:
   * that is returned (`status: "unhealthy"`, `reason`), not thrown.
   */
  async health(opts: RequestOptions = {}): Promise<Health> {
    const raw = (await this.#request({
      method: "GET",
      path: "/health",
      auth: false,
      idempotent: true,
      opts,
      acceptStatus: [503],
    })) as HealthModel;
    return {
      status: raw.status,
      version: raw.version,
      timestamp: raw.timestamp,
      uptimeSeconds: raw.uptime_seconds,
      reason: raw.reason ?? null,
      raw,
    };
  }

  // ----------------------------------------------------------------------------------------------
  // Internals

  #rememberSession(sessionId: string, clusterId: string): void {
    this.#sessionClusters.delete(sessionId);
    this.#sessionClusters.set(sessionId, clusterId);
    if (this.#sessionClusters.size > SESSION_CACHE_SIZE) {
      const oldest = this.#sessionClusters.keys().next().value;
      if (oldest !== undefined) this.#sessionClusters.delete(oldest);
    }
  }

  async #clusterOfSession(sessionId: string, opts: RequestOptions): Promise<string> {
    const known = this.#sessionClusters.get(sessionId);
    if (known !== undefined) return known;
    const { timeout, maxRetries, signal, correlationId, headers } = opts;
    const info = await this.getSession(sessionId, { timeout, maxRetries, signal, correlationId, headers });
    return info.clusterId;
  }

  async #request(call: Call): Promise<unknown> {
    const opts = call.opts ?? {};
    const url = this.#url(call.path, call.query);
    const maxRetries = Math.floor(nonNegative(opts.maxRetries, this.maxRetries, "maxRetries"));
    const timeoutMs = nonNegative(opts.timeout, call.defaultTimeoutMs ?? this.timeout, "timeout");
    const headers: Record<string, string> = { ...this.#headers, ...lowerKeys(opts.headers) };
    if (opts.correlationId !== undefined) headers["x-correlation-id"] = opts.correlationId;
    if (call.auth) {
      if (this.#apiKey === undefined || this.#apiKey === "") {
        throw configError(
          `No API key for ${call.method} ${call.path}: pass \`apiKey\` to new Client({ … }) or set KUBELINE_API_KEY.`,
        );
      }
      headers["authorization"] = `Bearer ${this.#apiKey}`;
    }
    let body: string | undefined;
    if (call.body !== undefined) {
      body = JSON.stringify(call.body);
      headers["content-type"] = "application/json";
    }

    for (let attempt = 0; ; attempt++) {
      const outcome = await this.#attempt(call.method, url, headers, body, timeoutMs, opts.signal);
      const attempts = attempt + 1;
      if ("kind" in outcome) {
        if (outcome.kind === "aborted") {
          throw new KubelineAbortError({
            code: "aborted",
            message: `${call.method} ${url} was aborted by the caller's signal`,
            method: call.method,
            url,
            cause: outcome.cause,
          });
        }
        const retriable = call.idempotent || !outcome.maybeSent;
        if (retriable && attempt < maxRetries) {
          await sleep(backoffMs(attempt), opts.signal);
          continue;
        }
        throw this.#connectionError(call, url, outcome, attempts, retriable);
      }

      const { status, headers: answerHeaders, body: answerBody } = outcome;
      if ((status >= 200 && status < 300) || call.acceptStatus?.includes(status)) {
        if (answerBody === undefined || answerBody instanceof NotJson) {
          throw new KubelineError({
            code: "invalid_response",
            status,
            method: call.method,
            url,
            message: `${call.method} ${url} answered ${status} with ${answerBody === undefined ? "an empty body" : "a body that is not JSON"}, not a kubeline answer. Is ${this.endpoint} a kubeline broker?`,
          });
        }
        return answerBody;
      }

      const error = this.#apiError(call, url, status, answerHeaders, answerBody);
      if ((status === 429 || status === 503) && attempt < maxRetries) {
        const retryAfterMs = parseRetryAfter(answerHeaders.get("retry-after"));
        if (retryAfterMs !== undefined && retryAfterMs > this.maxRetryWait) throw error;
        const wait =
          retryAfterMs !== undefined
            ? retryAfterMs + Math.random() * Math.min(1000, retryAfterMs * 0.1)
            : backoffMs(attempt);
        await sleep(wait, opts.signal);
        continue;
      }
      throw error;
    }
  }

  async #attempt(
    method: Method,
    url: string,
    headers: Record<string, string>,
    body: string | undefined,
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ): Promise<Answer | NoAnswer | UserAbort> {
    if (signal?.aborted) return { kind: "aborted", cause: signal.reason };
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const onAbort = () => controller.abort(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const init: RequestInit = { method, headers, signal: controller.signal };
      if (body !== undefined) init.body = body;
      const response = await this.#fetch(url, init);
      const text = await response.text();
      let parsed: unknown = undefined;
      if (text !== "") {
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = undefined;
        }
      }
      return { status: response.status, headers: response.headers, body: parsed === undefined && text !== "" ? new NotJson(text, response.headers.get("content-type")) : parsed };
    } catch (error) {
      if (timedOut) {
        return { kind: "no-answer", reason: "timeout", maybeSent: true, cause: error, timeoutMs };
      }
      if (signal?.aborted) return { kind: "aborted", cause: signal.reason ?? error };
      return classify(error);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
  }

  #connectionError(call: Call, url: string, failure: NoAnswer, attempts: number, retriable: boolean): KubelineConnectionError {
    const host = safeHost(url);
    let what: string;
    let hint: string;
    switch (failure.reason) {
      case "refused":
        what = `connection refused${errnoText(failure)}: nothing is listening there`;
        hint = "Is the broker running, and is the endpoint right?";
        break;
      case "dns":
        what = `the host name ${JSON.stringify(host)} could not be resolved${errnoText(failure)}`;
        hint = "Check the host name in the endpoint.";
        break;
      case "timeout":
        what =
          failure.timeoutMs !== undefined
            ? `no answer within ${failure.timeoutMs} ms (the client's timeout)`
            : `the connection timed out${errnoText(failure)}`;
        hint =
          failure.timeoutMs !== undefined
            ? "Raise `timeout` (milliseconds; a client option or per call) if the broker is just slow, or check that it is reachable."
            : "Check that the broker is reachable from here (network, firewall).";
        break;
      case "reset":
        what = `the connection was closed before the broker answered${errnoText(failure)}`;
        hint = "Check the broker's log, and any proxy in between.";
        break;
      case "tls":
        what = `TLS failed${errnoText(failure)}: ${causeMessage(failure.cause)}`;
        hint = "Check the broker's certificate, or trust its CA with NODE_EXTRA_CA_CERTS.";
        break;
      default:
        what = causeMessage(failure.cause) + errnoText(failure);
        hint = /^bad port$/i.test(what)
          ? "fetch refuses to connect to this port (it is on the Fetch standard's list of blocked ports): run the broker on another port."
          : "Check the endpoint and that the broker is reachable.";
    }
    const tries = attempts > 1 ? ` (after ${attempts} attempts)` : "";
    const source = this.#endpointSource === "KUBELINE_ENDPOINT" ? " (endpoint from KUBELINE_ENDPOINT)" : "";
    let message = `Could not reach the kubeline broker: ${call.method} ${url} failed${tries}: ${what}. ${hint}${failure.reason === "refused" || failure.reason === "dns" ? source : ""}`;
    if (!retriable && failure.maybeSent) {
      message +=
        call.path === "/debug/execute"
          ? " The request may have reached the broker, so the command may have run (or still be running); it was not sent again: a command is never resent once it may have been sent."
          : " The request may have reached the broker; it was not sent again because it is not idempotent.";
    }
    const init = {
      code: failure.reason === "timeout" ? "connection_timeout" : "connection_error",
      message,
      method: call.method,
      url,
      cause: failure.cause,
      reason: failure.reason,
      attempts,
      maybeSent: failure.maybeSent,
      ...(failure.errno !== undefined ? { errno: failure.errno } : {}),
    };
    return failure.reason === "timeout"
      ? new KubelineTimeoutError({ ...init, timeoutMs: failure.timeoutMs ?? Number.NaN })
      : new KubelineConnectionError(init);
  }

  #apiError(call: Call, url: string, status: number, headers: Headers, body: unknown): KubelineError {
    const correlationId = headers.get("x-correlation-id") ?? undefined;
    const rateLimit = readRateLimit(headers);
    const common = { status, method: call.method, url, ...(correlationId ? { correlationId } : {}), ...(rateLimit ? { rateLimit } : {}) };
    if (!isErrorBody(body)) {
      const what =
        body instanceof NotJson
          ? `a body that is not JSON (${body.contentType ?? "no content type"}: ${JSON.stringify(body.text.slice(0, 200))})`
          : body === undefined
            ? "an empty body"
            : "a JSON body that is not a kubeline error";
      return new KubelineError({
        ...common,
        code: "invalid_response",
        message: `${call.method} ${url} answered ${status} with ${what}. Is ${this.endpoint} a kubeline broker, or is a proxy in between failing?`,
      });
    }
    const details = body.details && typeof body.details === "object" ? (body.details as Record<string, unknown>) : null;
    const requestId = typeof details?.["request_id"] === "string" ? (details["request_id"] as string) : undefined;
    let message = body.message;
    if (status === 401 && this.#apiKey === undefined) {
      message += " (this client has no API key: pass `apiKey` or set KUBELINE_API_KEY)";
    }
    const init = { ...common, code: body.error, message, details, ...(requestId ? { requestId } : {}) };
    if (body.error === "rate_limited" || status === 429) {
      const retryAfterMs = parseRetryAfter(headers.get("retry-after"));
      return new RateLimitedError({
        ...init,
        ...(retryAfterMs !== undefined ? { retryAfter: retryAfterMs / 1000 } : {}),
      });
    }
    const Cls = errorClassFor(body.error);
    return new Cls(init);
  }

  #url(path: string, query?: Record<string, string | number | undefined>): string {
    let url = this.endpoint + path;
    if (query) {
      const params = new URLSearchParams();
      for (const [key, value] of Object.entries(query)) {
        if (value !== undefined) params.set(key, String(value));
      }
      const qs = params.toString();
      if (qs) url += `?${qs}`;
    }
    return url;
  }
}

/**
 * A debug session (`{sessionId, clusterId, status, createdAt, expiresAt}`), with shortcuts to run
 * commands in it. `raw` is the broker's answer.
 */
export class DebugSession implements SessionData {
  readonly sessionId: string;
  readonly clusterId: string;
  readonly status: SessionStatus;
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly raw: SessionCreatedModel;
  readonly #client: Client;

  constructor(client: Client, raw: SessionCreatedModel) {
    this.#client = client;
    this.sessionId = raw.session_id;
    this.clusterId = raw.cluster_id;
    this.status = raw.status;
    this.createdAt = raw.created_at;
    this.expiresAt = raw.expires_at;
    this.raw = raw;
  }

  /** `client.execute(this.sessionId, …)`. */
  execute(type: CommandType, args: readonly string[] = [], opts: ExecuteOptions = {}): Promise<CommandResult> {
    return this.#client.execute(this.sessionId, type, args, { clusterId: this.clusterId, ...opts });
  }

  /** `client.getResult(…)`. */
  getResult(resultId: string, opts?: GetResultOptions): Promise<CommandResult> {
    return this.#client.getResult(resultId, opts);
  }

  /** `client.readOutput(…)`. */
  readOutput(resultId: string, opts?: ReadOutputOptions): Promise<string> {
    return this.#client.readOutput(resultId, opts);
  }

  /** `client.getSession(this.sessionId)`. */
  info(opts?: RequestOptions): Promise<SessionInfo> {
    return this.#client.getSession(this.sessionId, opts);
  }

  /** `client.closeSession(this.sessionId)`. */
  close(opts?: RequestOptions): Promise<SessionClosed> {
    return this.#client.closeSession(this.sessionId, opts);
  }

  toJSON(): SessionData {
    return {
      sessionId: this.sessionId,
      clusterId: this.clusterId,
      status: this.status,
      createdAt: this.createdAt,
      expiresAt: this.expiresAt,
    };
  }
}

// ------------------------------------------------------------------------------------------------
// Helpers

class NotJson {
  constructor(
    readonly text: string,
    readonly contentType: string | null,
  ) {}
}

function isErrorBody(body: unknown): body is { error: string; message: string; details?: unknown } {
  return (
    typeof body === "object" &&
    body !== null &&
    typeof (body as { error?: unknown }).error === "string" &&
    typeof (body as { message?: unknown }).message === "string"
  );
}

function toCommandResult(raw: CommandResultModel): CommandResult {
  return {
    resultId: raw.result_id,
    sessionId: raw.session_id,
    clusterId: raw.cluster_id,
    status: raw.status,
    output: raw.output,
    error: raw.error,
    exitCode: raw.exit_code,
    executionTimeMs: raw.execution_time_ms,
    executedAt: raw.executed_at,
    correlationId: raw.correlation_id,
    truncated: raw.truncated ?? null,
    window: (raw as { window?: CommandResult["window"] }).window ?? null,
    raw,
  };
}

function closeOptions(opts: RequestOptions): RequestOptions {
  // The close must happen even when the caller's signal aborted the callback.
  const { timeout, maxRetries, correlationId, headers } = opts;
  return { timeout, maxRetries, correlationId, headers };
}

function configError(message: string): KubelineError {
  return new KubelineError({ code: "configuration_error", message });
}

function invalidResponse(message: string): KubelineError {
  return new KubelineError({ code: "invalid_response", message: `Unexpected answer from the broker: ${message}.` });
}

function parseEndpoint(value: string, source: EndpointSource): string {
  const from = source === "option" ? "`endpoint`" : "KUBELINE_ENDPOINT";
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw configError(`${from} ${JSON.stringify(value)} is not a URL: give the broker's base URL, e.g. http://127.0.0.1:8080`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw configError(`${from} ${JSON.stringify(value)} is not an http:// or https:// URL: give the broker's base URL, e.g. http://127.0.0.1:8080`);
  }
  if (url.search || url.hash) {
    throw configError(`${from} ${JSON.stringify(value)} has a query or fragment: give only the broker's base URL`);
  }
  return url.toString().replace(/\/+$/, "");
}

function requireString(value: unknown, name: string): asserts value is string {
  if (typeof value !== "string" || value === "") {
    throw new TypeError(`${name} must be a non-empty string (got ${value === "" ? "an empty string" : typeof value})`);
  }
}

function nonNegative(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw new TypeError(`${name} must be a number ≥ 0 (got ${String(value)})`);
  }
  return value;
}

function lowerKeys(headers: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers ?? {})) out[k.toLowerCase()] = v;
  return out;
}

/** Exponential backoff: 0.5 s, 1 s, 2 s, … capped at 8 s, minus up to 25 % jitter. */
export function backoffMs(attempt: number): number {
  const base = Math.min(500 * 2 ** attempt, 8_000);
  return base * (1 - Math.random() * 0.25);
}

/** `Retry-After` as milliseconds: delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined || value.trim() === "") return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  if (Number.isFinite(date)) return Math.max(0, date - Date.now());
  return undefined;
}

function readRateLimit(headers: Headers): RateLimitInfo | undefined {
  const num = (name: string) => {
    const v = headers.get(name);
    const n = v === null ? Number.NaN : Number(v);
    return Number.isFinite(n) ? n : undefined;
  };
  const limit = num("x-ratelimit-limit");
  const remaining = num("x-ratelimit-remaining");
  const reset = num("x-ratelimit-reset");
  if (limit === undefined && remaining === undefined && reset === undefined) return undefined;
  return {
    ...(limit !== undefined ? { limit } : {}),
    ...(remaining !== undefined ? { remaining } : {}),
    ...(reset !== undefined ? { reset } : {}),
  };
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new KubelineAbortError({ code: "aborted", message: "aborted by the caller's signal", cause: signal.reason }));
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new KubelineAbortError({ code: "aborted", message: "aborted by the caller's signal while waiting to retry", cause: signal?.reason }));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

const REFUSED = new Set(["ECONNREFUSED"]);
const DNS = new Set(["ENOTFOUND", "EAI_AGAIN", "EAI_NONAME", "EAI_FAIL", "EAI_NODATA"]);
const UNREACHABLE = new Set(["EHOSTUNREACH", "ENETUNREACH", "EADDRNOTAVAIL", "ENETDOWN", "EHOSTDOWN"]);
const CONNECT_TIMEOUT = new Set(["UND_ERR_CONNECT_TIMEOUT", "ETIMEDOUT"]);
const ANSWER_TIMEOUT = new Set(["UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT"]);
const RESET = new Set(["ECONNRESET", "EPIPE", "UND_ERR_SOCKET", "UND_ERR_CLOSED", "ECONNABORTED"]);

/** Classifies a fetch failure by the first error code in its cause chain. */
function classify(error: unknown): NoAnswer {
  const codes = collectCodes(error);
  const errno = codes[0];
  const has = (set: Set<string>) => codes.find((c) => set.has(c));
  let found: string | undefined;
  if ((found = has(REFUSED))) return { kind: "no-answer", reason: "refused", errno: found, maybeSent: false, cause: error };
  if ((found = has(DNS))) return { kind: "no-answer", reason: "dns", errno: found, maybeSent: false, cause: error };
  if ((found = has(UNREACHABLE))) return { kind: "no-answer", reason: "refused", errno: found, maybeSent: false, cause: error };
  if ((found = has(CONNECT_TIMEOUT))) return { kind: "no-answer", reason: "timeout", errno: found, maybeSent: false, cause: error };
  if ((found = codes.find(isTlsCode))) return { kind: "no-answer", reason: "tls", errno: found, maybeSent: false, cause: error };
  if ((found = has(ANSWER_TIMEOUT))) return { kind: "no-answer", reason: "timeout", errno: found, maybeSent: true, cause: error };
  if ((found = has(RESET))) return { kind: "no-answer", reason: "reset", errno: found, maybeSent: true, cause: error };
  return { kind: "no-answer", reason: "other", ...(errno !== undefined ? { errno } : {}), maybeSent: true, cause: error };
}

function isTlsCode(code: string): boolean {
  return (
    code.startsWith("ERR_TLS_") ||
    code.startsWith("ERR_SSL_") ||
    code.startsWith("CERT_") ||
    code.includes("SELF_SIGNED") ||
    code.startsWith("UNABLE_TO_") ||
    code === "HOSTNAME_MISMATCH"
  );
}

function collectCodes(error: unknown, depth = 0, out: string[] = []): string[] {
  if (depth > 6 || error === null || typeof error !== "object") return out;
  const e = error as { code?: unknown; cause?: unknown; errors?: unknown };
  if (typeof e.code === "string") out.push(e.code);
  if (Array.isArray(e.errors)) for (const inner of e.errors) collectCodes(inner, depth + 1, out);
  collectCodes(e.cause, depth + 1, out);
  return out;
}

function causeMessage(error: unknown): string {
  let e: unknown = error;
  // The innermost cause says the most ("fetch failed" says nothing).
  for (let i = 0; i < 6 && e && typeof e === "object" && "cause" in e && (e as { cause?: unknown }).cause; i++) {
    e = (e as { cause: unknown }).cause;
  }
  return e instanceof Error ? e.message : String(e);
}

function errnoText(failure: NoAnswer): string {
  return failure.errno ? ` (${failure.errno})` : "";
}

function safeHost(url: string): string {
  try {
    return new URL(url).hostname;
  } catch {
    return url;
  }
}
