import type { ErrorCode, RateLimitInfo } from "./types.js";

/** Codes of errors the client itself raises (no answer from the broker, or an unusable one). */
export type ClientErrorCode =
  | "connection_error"
  | "connection_timeout"
  | "aborted"
  | "invalid_response"
  | "configuration_error";

export interface KubelineErrorInit {
  status?: number;
  code: ErrorCode | ClientErrorCode | (string & {});
  message: string;
  details?: Record<string, unknown> | null;
  requestId?: string;
  correlationId?: string;
  method?: string;
  url?: string;
  rateLimit?: RateLimitInfo;
  cause?: unknown;
}

/**
 * Every error the SDK throws. For an error answer of the broker (`{"error", "message",
 * "details"}`) it is an instance of the subclass of its `code` (`NotFoundError`, …), with
 * `status` the HTTP status; `KubelineConnectionError` means no answer arrived.
 */
export class KubelineError extends Error {
  /** HTTP status of the broker's answer; `undefined` when there was no answer. */
  readonly status: number | undefined;
  /** The contract's error code (`not_found`, …) or a client code (`connection_error`, …). */
  readonly code: ErrorCode | ClientErrorCode | (string & {});
  /** The answer's `details` (`details.code` says which check failed, `details.field`, …). */
  readonly details: Record<string, unknown> | null;
  /** `details.request_id` of a 500: finds the failure in the broker's log. */
  readonly requestId: string | undefined;
  /** The request's `X-Correlation-ID` as the broker echoed it. */
  readonly correlationId: string | undefined;
  /** HTTP method and full URL of the request. */
  readonly method: string | undefined;
  readonly url: string | undefined;
  /** Rate-limit headers of the answer, when it had them. */
  readonly rateLimit: RateLimitInfo | undefined;

  constructor(init: KubelineErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.status = init.status;
    this.code = init.code;
    this.details = init.details ?? null;
    this.requestId = init.requestId;
    this.correlationId = init.correlationId;
    this.method = init.method;
    this.url = init.url;
    this.rateLimit = init.rateLimit;
  }

  /** `details.code`, the finer reason of many answers (`cluster_not_granted`, `revoked`, …). */
  get detailCode(): string | undefined {
    const code = this.details?.["code"];
    return typeof code === "string" ? code : undefined;
  }
}

/** 400 `invalid_request`: a missing or bad field (`details.field`) or a refused command or argument (`details.argument`, `details.code`). */
export class InvalidRequestError extends KubelineError {}
/** 401 `unauthorized`: no, malformed, unknown, revoked or expired credential (`details.code`). */
export class UnauthorizedError extends KubelineError {}
/** 403 `forbidden`: the credential may not do this (`cluster_not_granted`, `session_not_owned`, `admin_scope_required`). */
export class ForbiddenError extends KubelineError {}
/** 404 `not_found`: no such cluster, session or result. */
export class NotFoundError extends KubelineError {}
/** 405 `method_not_allowed`. */
export class MethodNotAllowedError extends KubelineError {}
/** 413 `payload_too_large`: the request body is over the broker's `--max-body-bytes`. */
export class PayloadTooLargeError extends KubelineError {}
/** 415 `unsupported_media_type`: the body was not JSON. */
export class UnsupportedMediaTypeError extends KubelineError {}

/** 429 `rate_limited`: over the credential's rate limit (or too many executes in flight). */
export class RateLimitedError extends KubelineError {
  /** Seconds to wait before trying again (`Retry-After`), when the broker said. */
  readonly retryAfter: number | undefined;
  /** `details.limit`: requests per `window`. */
  readonly limit: number | undefined;
  /** `details.window`, e.g. `1m`. */
  readonly window: string | undefined;

  constructor(init: KubelineErrorInit & { retryAfter?: number }) {
    super(init);
    const d = init.details ?? {};
    const fromDetails = typeof d["retry_after"] === "number" ? (d["retry_after"] as number) : undefined;
    this.retryAfter = init.retryAfter ?? fromDetails;
    this.limit = typeof d["limit"] === "number" ? (d["limit"] as number) : undefined;
    this.window = typeof d["window"] === "string" ? (d["window"] as string) : undefined;
  }
}

/** 500 `internal_error`: a broker bug; `requestId` finds it in the broker's log. */
export class InternalServerError extends KubelineError {}
/** 503 `service_unavailable`: no agent linked for the cluster, its link was lost, or the broker's store or audit trail is down. */
export class ServiceUnavailableError extends KubelineError {}
/** 504 `timeout`: the command did not finish within its timeout (the stored result says `timeout`). */
export class CommandTimeoutError extends KubelineError {}

/** What went wrong when no answer arrived. */
export type ConnectionFailure =
  | "refused"
  | "dns"
  | "timeout"
  | "reset"
  | "tls"
  | "other";

/**
 * No answer from the broker: it refused the connection, its host name did not resolve, the
 * connection broke, TLS failed, or (`KubelineTimeoutError`) no answer came in time. The
 * message names the URL and the cause.
 */
export class KubelineConnectionError extends KubelineError {
  /** Which failure it was. */
  readonly reason: ConnectionFailure;
  /** The low-level error code when there was one (`ECONNREFUSED`, `ENOTFOUND`, …). */
  readonly errno: string | undefined;
  /** HTTP attempts made (1 + retries). */
  readonly attempts: number;
  /**
   * `true` when the request may have reached the broker before the failure (so a command may
   * have run although no result came back); `false` when it certainly did not (refused, DNS).
   */
  readonly maybeSent: boolean;

  constructor(
    init: KubelineErrorInit & {
      reason: ConnectionFailure;
      errno?: string;
      attempts: number;
      maybeSent: boolean;
    },
  ) {
    super(init);
    this.reason = init.reason;
    this.errno = init.errno;
    this.attempts = init.attempts;
    this.maybeSent = init.maybeSent;
  }
}

/** No answer within the `timeout` (milliseconds of one HTTP attempt). */
export class KubelineTimeoutError extends KubelineConnectionError {
  /** The timeout that ran out, in milliseconds. */
  readonly timeoutMs: number;

  constructor(init: ConstructorParameters<typeof KubelineConnectionError>[0] & { timeoutMs: number }) {
    super(init);
    this.timeoutMs = init.timeoutMs;
  }
}

/** The caller's `signal` aborted the call. */
export class KubelineAbortError extends KubelineError {}

type ErrorClass = new (init: KubelineErrorInit) => KubelineError;

/**
 * One class per code of the contract's `ErrorCode` enum. Typed as a `Record` over the generated
 * enum: a code added to the broker's API fails to compile here until it has its class.
 */
export const ERROR_CLASSES: Readonly<Record<ErrorCode, ErrorClass>> = Object.freeze({
  invalid_request: InvalidRequestError,
  unauthorized: UnauthorizedError,
  forbidden: ForbiddenError,
  not_found: NotFoundError,
  method_not_allowed: MethodNotAllowedError,
  payload_too_large: PayloadTooLargeError,
  unsupported_media_type: UnsupportedMediaTypeError,
  rate_limited: RateLimitedError,
  internal_error: InternalServerError,
  service_unavailable: ServiceUnavailableError,
  timeout: CommandTimeoutError,
});

/** The class for an answer's code (`KubelineError` itself for a code this SDK does not know). */
export function errorClassFor(code: string): ErrorClass {
  return Object.prototype.hasOwnProperty.call(ERROR_CLASSES, code)
    ? ERROR_CLASSES[code as ErrorCode]
    : KubelineError;
}
