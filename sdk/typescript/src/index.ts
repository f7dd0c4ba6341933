export {
  Client,
  DebugSession,
  DEFAULT_MAX_RETRIES,
  DEFAULT_MAX_RETRY_WAIT_MS,
  DEFAULT_TIMEOUT_MS,
  backoffMs,
  parseRetryAfter,
  type ClientOptions,
} from "./client.js";
export {
  CommandTimeoutError,
  ERROR_CLASSES,
  ForbiddenError,
  InternalServerError,
  InvalidRequestError,
  KubelineAbortError,
  KubelineConnectionError,
  KubelineError,
  KubelineTimeoutError,
  MethodNotAllowedError,
  NotFoundError,
  PayloadTooLargeError,
  RateLimitedError,
  ServiceUnavailableError,
  UnauthorizedError,
  UnsupportedMediaTypeError,
  errorClassFor,
  type ClientErrorCode,
  type ConnectionFailure,
  type KubelineErrorInit,
} from "./errors.js";
export type * from "./types.js";
/** The generated REST types (`paths`, `components`, `operations`) of broker/openapi.json. */
export type { paths, components, operations } from "./openapi.js";
export { VERSION } from "./version.js";
