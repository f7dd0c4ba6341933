// The REST models (snake_case, exactly as the broker sends them) are the generated types of
// ./openapi.ts; this file names them and defines the SDK's own camelCase objects around them.
import type { components, operations } from "./openapi.js";

type Schemas = components["schemas"];

/** Raw REST models, as generated from broker/openapi.json (snake_case). */
export type ErrorBody = Schemas["ErrorBody"];
export type ErrorCode = Schemas["ErrorCode"];
export type CommandType = Schemas["ExecuteRequest"]["command_type"];
export type ExecuteRequest = Schemas["ExecuteRequest"];
export type CreateSessionRequest = Schemas["CreateSessionRequest"];
export type SessionCreatedModel = Schemas["SessionCreated"];
export type SessionInfoModel = Schemas["SessionInfo"];
export type SessionClosedModel = Schemas["SessionClosed"];
export type SessionListModel = Schemas["SessionList"];
export type SessionSummaryModel = Schemas["SessionSummary"];
export type SessionStatus = Schemas["SessionStatus"];
export type ResultStatus = Schemas["ResultStatus"];
export type Truncation = Schemas["Truncation"];
export type ClusterListModel = Schemas["ClusterList"];
export type ClusterSummaryModel = Schemas["ClusterSummary"];
export type ClusterStatusInfoModel = Schemas["ClusterStatusInfo"];
export type ClusterLinkStatus = Schemas["ClusterStatus"];
export type HealthModel = Schemas["Health"];

/**
 * A window of a stored result's output (`GET /debug/result/{id}?offset=&limit=`), declared by
 * hand for as long as the broker/openapi.json the types were generated from has no
 * `OutputWindow`; with one, `ResultWindow` is the generated type.
 */
export interface HandWrittenResultWindow {
  /** Byte offset of the window in the stored (UTF-8) output. */
  offset: number;
  /** Bytes of output in the window. */
  length: number;
  /** Bytes of stored output in all. */
  total_bytes: number;
  /** Where the next window starts; `null` when this one reaches the end. */
  next_offset: number | null;
}

/** Which part of a result's stored output an answer holds (snake_case, as the broker sends it). */
export type ResultWindow = Schemas extends { OutputWindow: infer W } ? W : HandWrittenResultWindow;

/** `CommandResult` as the broker sends it, `window` included (generated, or added by hand). */
export type CommandResultModel = Schemas["CommandResult"] extends { window?: unknown }
  ? Schemas["CommandResult"]
  : Schemas["CommandResult"] & { window?: ResultWindow | null };

/** Query of `GET /debug/sessions`, as generated. */
export type ListSessionsQuery = NonNullable<operations["list_sessions"]["parameters"]["query"]>;

/** Rate-limit headers of an authenticated answer (absent when the class is unlimited). */
export interface RateLimitInfo {
  /** Requests a minute this credential may make in the route's class. */
  limit?: number;
  /** Requests left in the class before answers become 429. */
  remaining?: number;
  /** When the budget is full again, seconds since the Unix epoch. */
  reset?: number;
}

/** Options of every call. */
export interface RequestOptions {
  /** Milliseconds one HTTP attempt may take, answer body included (default: the client's). */
  timeout?: number;
  /** Retries of this call (default: the client's `maxRetries`). */
  maxRetries?: number;
  /** Abort the call. */
  signal?: AbortSignal;
  /** Sent as `X-Correlation-ID`; the broker echoes it and keeps it with results. */
  correlationId?: string;
  /** More headers for this call (e.g. `traceparent`). */
  headers?: Record<string, string>;
}

export interface CreateSessionOptions extends RequestOptions {
  /** Free-form metadata kept with the session (`user`, `correlation_id`, …). */
  metadata?: Record<string, unknown>;
}

export interface ExecuteOptions extends RequestOptions {
  /**
   * Seconds the broker waits for the command (the body's `timeout`; broker default 30, at most
   * its `--max-timeout`, 300 by default). Unlike `timeout` (milliseconds of one HTTP attempt), a
   * command that runs out of it is answered with a 504 (`CommandTimeoutError`).
   */
  commandTimeout?: number;
  /** Output budget in bytes (at most the broker's `--max-output-bytes`, 4 MiB by default). */
  maxOutputBytes?: number;
  /**
   * The session's cluster. Not needed for sessions this client created; for others the client
   * looks the session up once (`GET /debug/session/{id}`) and remembers it.
   */
  clusterId?: string;
}

export interface GetResultOptions extends RequestOptions {
  /** Byte offset of the window's first byte (in the UTF-8 output). */
  offset?: number;
  /** Most bytes in the window (broker default 65536, at most 4194304). */
  limit?: number;
}

export interface ReadOutputOptions extends RequestOptions {
  /** Bytes asked per window (default 1 MiB, at most 4194304). */
  windowBytes?: number;
}

export interface ListSessionsOptions extends RequestOptions {
  clusterId?: string;
  status?: SessionStatus;
  /** At most this many (broker default 50). */
  limit?: number;
}

/** A debug session (`POST /debug/session`). */
export interface SessionData {
  sessionId: string;
  clusterId: string;
  status: SessionStatus;
  createdAt: string;
  expiresAt: string;
}

/** `GET /debug/session/{id}`. */
export interface SessionInfo extends SessionData {
  lastActivity: string;
  commandsExecuted: number;
  raw: SessionInfoModel;
}

/** `DELETE /debug/session/{id}`. */
export interface SessionClosed {
  sessionId: string;
  status: SessionStatus;
  closedAt: string;
  raw: SessionClosedModel;
}

/** One row of `GET /debug/sessions`. */
export interface SessionSummary {
  sessionId: string;
  clusterId: string;
  status: SessionStatus;
  createdAt: string;
  lastActivity: string;
  raw: SessionSummaryModel;
}

/** `GET /debug/sessions`. */
export interface SessionList {
  sessions: SessionSummary[];
  total: number;
  raw: SessionListModel;
}

/** `POST /debug/execute` and `GET /debug/result/{id}`. */
export interface CommandResult {
  resultId: string;
  sessionId: string;
  clusterId: string;
  /**
   * `completed`, `failed` (kubectl failed as kubectl would: NotFound, Forbidden, a usage error;
   * its message is in `error`, its code in `exitCode`), `timeout`, or `pending` (still running).
   */
  status: ResultStatus;
  /** Standard output (only the window's bytes for a windowed read). */
  output: string;
  /** Standard error, or why the command could not run; `null` on success. */
  error: string | null;
  exitCode: number | null;
  executionTimeMs: number;
  executedAt: string;
  correlationId: string;
  /** Set when the output was cut to fit the output budget. */
  truncated: Truncation | null;
  /** Set for windowed reads. */
  window: ResultWindow | null;
  raw: CommandResultModel;
}

/** One row of `GET /clusters`. */
export interface ClusterSummary {
  clusterId: string;
  name: string;
  status: ClusterLinkStatus;
  agentVersion: string | null;
  lastSeen: string | null;
  raw: ClusterSummaryModel;
}

/** `GET /clusters/{id}/status`. */
export interface ClusterStatusInfo {
  clusterId: string;
  status: ClusterLinkStatus;
  agentVersion: string | null;
  kubernetesVersion: string | null;
  lastSeen: string | null;
  activeSessions: number;
  queueDepth: number;
  raw: ClusterStatusInfoModel;
}

/** `GET /health`. */
export interface Health {
  /** `healthy`, or `unhealthy` (then `reason` says why; the broker answers 503). */
  status: string;
  version: string;
  timestamp: string;
  uptimeSeconds: number;
  reason: string | null;
  raw: HealthModel;
}
