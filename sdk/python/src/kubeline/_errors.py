"""Exceptions: one class per error code of the contract, plus connection and timeout errors.

Every error the client raises is a :class:`KubelineError`. An answer from the broker that is not
a success becomes the class of its ``error`` code (``ERROR_CLASSES``); a code this SDK does not
know becomes the base class itself. Failing to reach the broker at all is a
:class:`KubelineConnectionError` (:class:`KubelineTimeoutError` when a timeout ran out), whose
message names the URL and what failed.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "CommandTimeoutError",
    "ERROR_CLASSES",
    "ForbiddenError",
    "InternalServerError",
    "InvalidRequestError",
    "KubelineConfigError",
    "KubelineConnectionError",
    "KubelineError",
    "KubelineProtocolError",
    "KubelineTimeoutError",
    "MethodNotAllowedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitedError",
    "ServiceUnavailableError",
    "UnauthorizedError",
    "UnsupportedMediaTypeError",
]


class KubelineError(Exception):
    """Base of every error this SDK raises.

    Attributes:
        status: HTTP status of the broker's answer (``None`` when there was no answer).
        code: the contract's ``error`` code (``"not_found"`` …), ``None`` when there was none.
        message: what went wrong and what to do, as the broker (or the SDK) said it.
        details: the answer's ``details`` object (``{}`` when absent).
        request_id: ``X-Request-ID`` of the answer if the broker sent one, else
            ``details.request_id`` (set on 500 answers), else ``None``.
        correlation_id: ``X-Correlation-ID`` of the request (the SDK sends one with every
            request; the broker echoes it and stores it with results and audit records).
        method, url: the request that failed.
    """

    status: Optional[int]
    code: Optional[str]
    message: str
    details: dict[str, Any]
    request_id: Optional[str]
    correlation_id: Optional[str]
    method: Optional[str]
    url: Optional[str]

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int] = None,
        code: Optional[str] = None,
        details: Optional[Mapping[str, Any]] = None,
        request_id: Optional[str] = None,
        correlation_id: Optional[str] = None,
        method: Optional[str] = None,
        url: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = dict(details or {})
        self.request_id = request_id
        self.correlation_id = correlation_id
        self.method = method
        self.url = url
        self.headers: dict[str, str] = dict(headers or {})

    def __str__(self) -> str:
        if self.status is None:
            return self.message
        head = f"{self.status} {self.code}" if self.code else f"HTTP {self.status}"
        text = f"{head}: {self.message}"
        shown = {k: v for k, v in self.details.items() if v is not None}
        if shown:
            text += " [" + ", ".join(f"{k}={v}" for k, v in shown.items()) + "]"
        if self.method and self.url:
            text += f" ({self.method} {self.url}"
            if self.request_id:
                text += f", request id {self.request_id}"
            if self.correlation_id:
                text += f", correlation id {self.correlation_id}"
            text += ")"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
            f"message={self.message!r}, details={self.details!r})"
        )


class KubelineConfigError(KubelineError, ValueError):
    """The client was given something it cannot use (no endpoint, an endpoint that is not an
    http(s) URL, a bad argument)."""


class KubelineConnectionError(KubelineError):
    """The broker could not be reached, or the connection broke before an answer came.

    Attributes:
        reason: what failed, one of ``"refused"``, ``"dns"``, ``"tls"``, ``"timeout"``,
            ``"closed"`` (the connection was dropped), ``"network"``, ``"protocol"``.
        request_sent: whether the request may have reached the broker. When it is ``True`` for
            ``POST /debug/execute`` the command may have run: the SDK never repeats it.
        cause: the underlying transport exception (kept for debugging; not chained, so an
            uncaught error prints this message rather than the HTTP library's traceback).
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        request_sent: bool,
        cause: Optional[BaseException] = None,
        method: Optional[str] = None,
        url: Optional[str] = None,
        correlation_id: Optional[str] = None,
    ) -> None:
        super().__init__(message, method=method, url=url, correlation_id=correlation_id)
        self.reason = reason
        self.request_sent = request_sent
        self.cause = cause


class KubelineTimeoutError(KubelineConnectionError):
    """No answer within the client's ``timeout`` (connecting, sending or waiting for the answer).

    Not to be confused with :class:`CommandTimeoutError`: the broker's 504 when the *command* did
    not finish within its own ``timeout``."""


class KubelineProtocolError(KubelineError):
    """The broker answered with something that is not the contract's (not JSON, or a body that
    does not match this SDK's models): usually a proxy in between, or a broker much newer or
    older than this SDK."""


class InvalidRequestError(KubelineError):
    """400 ``invalid_request``: a field is missing or out of range, or the command was refused
    (a write verb, a flag outside the allowlist …). ``details.field`` or ``details.argument``
    names what to change, ``details.code`` says why."""


class UnauthorizedError(KubelineError):
    """401 ``unauthorized``: no credential, or one the broker does not accept
    (``details.code``: ``invalid_credentials``, ``revoked``, ``expired`` …)."""


class ForbiddenError(KubelineError):
    """403 ``forbidden``: the credential is valid but may not do this (``details.code``:
    ``cluster_not_granted``, ``session_not_owned``, ``admin_scope_required``)."""


class NotFoundError(KubelineError):
    """404 ``not_found``: the session, result or cluster does not exist."""


class MethodNotAllowedError(KubelineError):
    """405 ``method_not_allowed``."""


class PayloadTooLargeError(KubelineError):
    """413 ``payload_too_large``: the body is larger than the broker's ``--max-body-bytes``."""


class UnsupportedMediaTypeError(KubelineError):
    """415 ``unsupported_media_type``."""


class _RetryAfter:
    @property
    def retry_after(self) -> Optional[float]:
        """Seconds the broker asked to wait (``Retry-After``, else ``details.retry_after``)."""
        headers: dict[str, str] = getattr(self, "headers", {})
        details: dict[str, Any] = getattr(self, "details", {})
        value = headers.get("retry-after")
        if value is not None:
            try:
                return float(value)
            except ValueError:
                pass
        value = details.get("retry_after")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return None


class RateLimitedError(_RetryAfter, KubelineError):
    """429 ``rate_limited``: a rate limit or an in-flight limit was hit; nothing was done.

    ``retry_after`` is the wait the broker asked for, in seconds; ``limit``, ``remaining`` and
    ``reset`` come from the ``X-RateLimit-*`` headers when the broker sent them."""

    def _header_int(self, name: str) -> Optional[int]:
        value = self.headers.get(name)
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None

    @property
    def limit(self) -> Optional[int]:
        """Requests per minute allowed for this credential and route class."""
        found = self._header_int("x-ratelimit-limit")
        if found is None and isinstance(self.details.get("limit"), int):
            return int(self.details["limit"])
        return found

    @property
    def remaining(self) -> Optional[int]:
        return self._header_int("x-ratelimit-remaining")

    @property
    def reset(self) -> Optional[int]:
        """When the budget is full again, seconds since the Unix epoch."""
        return self._header_int("x-ratelimit-reset")


class InternalServerError(KubelineError):
    """500 ``internal_error``: ``request_id`` finds it in the broker's logs."""


class ServiceUnavailableError(_RetryAfter, KubelineError):
    """503 ``service_unavailable``: the cluster's agent is not connected (or its link was lost
    while the command ran: ``details.result_id`` is then set), the cluster's queue is full
    (``retry_after``), or the broker's store or audit trail is unavailable."""


class CommandTimeoutError(KubelineError):
    """504 ``timeout``: the command did not finish within its ``timeout``; the stored result
    (``result_id``) reads as ``timeout``."""

    @property
    def result_id(self) -> Optional[str]:
        value = self.details.get("result_id")
        return value if isinstance(value, str) else None


# Aliases under the names other SDKs use.
BadRequestError = InvalidRequestError
AuthenticationError = UnauthorizedError
PermissionDeniedError = ForbiddenError

ERROR_CLASSES: dict[str, type[KubelineError]] = {
    "invalid_request": InvalidRequestError,
    "unauthorized": UnauthorizedError,
    "forbidden": ForbiddenError,
    "not_found": NotFoundError,
    "method_not_allowed": MethodNotAllowedError,
    "payload_too_large": PayloadTooLargeError,
    "unsupported_media_type": UnsupportedMediaTypeError,
    "rate_limited": RateLimitedError,
    "internal_error": InternalServerError,
    "service_unavailable": ServiceUnavailableError,
    "timeout": CommandTimeoutError,
}
"""Contract error code → exception class (the drift test checks it covers ``ErrorCode``)."""
