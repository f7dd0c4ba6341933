"""What the sync and async clients share: configuration, request building, answer parsing, error
mapping and the retry policy. No I/O happens here."""

from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import socket
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence, TypeVar
from urllib.parse import quote, urlsplit

import httpx2
from pydantic import BaseModel, ValidationError

from ._errors import (
    ERROR_CLASSES,
    KubelineConfigError,
    KubelineConnectionError,
    KubelineError,
    KubelineProtocolError,
    KubelineTimeoutError,
)
from ._version import __version__

log = logging.getLogger("kubeline")

M = TypeVar("M", bound=BaseModel)

ENV_ENDPOINT = "KUBELINE_ENDPOINT"
ENV_API_KEY = "KUBELINE_API_KEY"

DEFAULT_TIMEOUT = 60.0
"""Seconds the client waits for an answer."""
DEFAULT_CONNECT_TIMEOUT = 10.0
"""Seconds to establish a connection, at most (never more than ``timeout``)."""
DEFAULT_MAX_RETRIES = 2
EXECUTE_GRACE = 5.0
"""Seconds an execute with an explicit command ``timeout`` waits beyond it, at least."""
INITIAL_BACKOFF = 0.25
MAX_BACKOFF = 8.0
DEFAULT_MAX_RETRY_AFTER = 60.0
"""Longest ``Retry-After`` the client sleeps through; a longer one is raised at once."""

RETRYABLE_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class Route:
    """One route of the REST API, as the client calls it."""

    method: str
    path: str
    idempotent: bool
    """Safe to send again when the connection broke after the request went out."""
    execute: bool = False


# Every route the client calls (the drift test checks each exists in openapi.json).
ROUTES: dict[str, Route] = {
    "health": Route("GET", "/health", True),
    "create_session": Route("POST", "/debug/session", False),
    "get_session": Route("GET", "/debug/session/{session_id}", True),
    "close_session": Route("DELETE", "/debug/session/{session_id}", True),
    "list_sessions": Route("GET", "/debug/sessions", True),
    "execute": Route("POST", "/debug/execute", False, execute=True),
    "get_result": Route("GET", "/debug/result/{result_id}", True),
    "list_clusters": Route("GET", "/clusters", True),
    "cluster_status": Route("GET", "/clusters/{cluster_id}/status", True),
    "create_api_key": Route("POST", "/admin/api-keys", False),
    "list_api_keys": Route("GET", "/admin/api-keys", True),
    "revoke_api_key": Route("DELETE", "/admin/api-keys/{key_id}", True),
    "create_agent_token": Route("POST", "/admin/agent-tokens", False),
    "list_agent_tokens": Route("GET", "/admin/agent-tokens", True),
    "revoke_agent_token": Route("DELETE", "/admin/agent-tokens/{token_id}", True),
}


@dataclass
class PreparedCall:
    """A request ready to send (again, on a retry: the same correlation id)."""

    route: Route
    url: str
    params: dict[str, Any]
    json_body: Optional[dict[str, Any]]
    headers: dict[str, str]
    timeout: httpx2.Timeout
    timeout_seconds: Optional[float]
    ok_statuses: frozenset[int] = field(default_factory=lambda: frozenset({200, 201}))

    @property
    def correlation_id(self) -> str:
        return self.headers["X-Correlation-ID"]


def resolve_endpoint(endpoint: Optional[str]) -> str:
    """The broker's base URL from the argument or ``KUBELINE_ENDPOINT``, checked."""
    value = endpoint if endpoint is not None else os.environ.get(ENV_ENDPOINT)
    if value is None or not value.strip():
        raise KubelineConfigError(
            "No kubeline broker endpoint: pass endpoint='http://broker:8080' to the client or set "
            f"{ENV_ENDPOINT}"
        )
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise KubelineConfigError(
            f"The kubeline endpoint {value!r} is not an http:// or https:// URL with a host "
            "(expected e.g. 'http://broker:8080')"
        )
    if parts.query or parts.fragment:
        raise KubelineConfigError(
            f"The kubeline endpoint {value!r} has a query or fragment; give the broker's base URL only"
        )
    return value.rstrip("/")


def resolve_api_key(api_key: Optional[str]) -> Optional[str]:
    value = api_key if api_key is not None else os.environ.get(ENV_API_KEY)
    if value is not None:
        value = value.strip()
        if not value:
            raise KubelineConfigError(
                f"The kubeline API key is empty: pass api_key= or set {ENV_API_KEY}"
            )
        if any(ch in value for ch in "\r\n"):
            raise KubelineConfigError("The kubeline API key contains a line break")
    return value


_ssl_context: Optional[ssl.SSLContext] = None
_ssl_lock = threading.Lock()


def tls_verify(verify: Any) -> Any:
    """``verify=True`` becomes one SSL context shared by every client of the process (building
    one reads the system's trust store: about 0.1 s)."""
    global _ssl_context
    if verify is not True:
        return verify
    with _ssl_lock:
        if _ssl_context is None:
            _ssl_context = httpx2.create_ssl_context()
        return _ssl_context


def make_timeout(seconds: Optional[float]) -> httpx2.Timeout:
    if seconds is None:
        return httpx2.Timeout(None)
    if seconds <= 0:
        raise KubelineConfigError(f"timeout must be > 0 seconds (or None for no timeout), not {seconds}")
    return httpx2.Timeout(seconds, connect=min(seconds, DEFAULT_CONNECT_TIMEOUT))


def check_id(name: str, value: str) -> str:
    if not isinstance(value, str) or not value:
        raise KubelineConfigError(f"{name} must be a non-empty string, not {value!r}")
    return value


def check_args(args: Optional[Sequence[str]]) -> list[str]:
    if args is None:
        return []
    if isinstance(args, (str, bytes)):
        raise KubelineConfigError(
            f"args must be a list of strings such as ['pods', '-A'], not the string {args!r} "
            "(use shlex.split() to split a command line)"
        )
    out = list(args)
    for item in out:
        if not isinstance(item, str):
            raise KubelineConfigError(f"args must be strings; got {item!r} ({type(item).__name__})")
    return out


class BaseClient:
    """Configuration and the pure parts of a request's life."""

    endpoint: str
    api_key: Optional[str]
    timeout: Optional[float]
    max_retries: int
    max_retry_after: float

    def _configure(
        self,
        *,
        endpoint: Optional[str],
        api_key: Optional[str],
        timeout: Optional[float],
        max_retries: int,
        max_retry_after: float,
        service_identity: Optional[str],
        default_headers: Optional[Mapping[str, str]],
    ) -> None:
        self.endpoint = resolve_endpoint(endpoint)
        self.api_key = resolve_api_key(api_key)
        if timeout is not None and timeout <= 0:
            raise KubelineConfigError(f"timeout must be > 0 seconds (or None for no timeout), not {timeout}")
        if max_retries < 0:
            raise KubelineConfigError(f"max_retries must be >= 0, not {max_retries}")
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_after = max_retry_after
        self.service_identity = service_identity
        self.default_headers = dict(default_headers or {})

    # --- building requests ---------------------------------------------------------------------

    def _headers(self, correlation_id: Optional[str]) -> dict[str, str]:
        headers = {
            "Accept": "application/json",
            "User-Agent": f"kubeline-python/{__version__}",
            "X-Correlation-ID": correlation_id or f"py_{uuid.uuid4().hex}",
        }
        if self.api_key is not None:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if self.service_identity:
            headers["X-Service-Identity"] = self.service_identity
        headers.update(self.default_headers)
        return headers

    def _prepare(
        self,
        name: str,
        *,
        path_params: Optional[Mapping[str, str]] = None,
        params: Optional[Mapping[str, Any]] = None,
        body: Optional[BaseModel] = None,
        correlation_id: Optional[str] = None,
        min_wait: Optional[float] = None,
        also_ok: frozenset[int] = frozenset(),
    ) -> PreparedCall:
        route = ROUTES[name]
        path = route.path
        for key, value in (path_params or {}).items():
            path = path.replace("{" + key + "}", quote(check_id(key, value), safe=""))
        seconds = self.timeout
        if seconds is not None and min_wait is not None:
            seconds = max(seconds, min_wait)
        return PreparedCall(
            route=route,
            url=self.endpoint + path,
            params={k: v for k, v in (params or {}).items() if v is not None},
            json_body=None if body is None else body.model_dump(mode="json", exclude_none=True),
            headers=self._headers(correlation_id),
            timeout=make_timeout(seconds),
            timeout_seconds=seconds,
            ok_statuses=frozenset({200, 201}) | also_ok,
        )

    # --- reading answers -----------------------------------------------------------------------

    def _error_from_response(self, call: PreparedCall, response: httpx2.Response) -> KubelineError:
        headers = {k.lower(): v for k, v in response.headers.items()}
        correlation_id = headers.get("x-correlation-id", call.correlation_id)
        common: dict[str, Any] = {
            "status": response.status_code,
            "method": call.route.method,
            "url": call.url,
            "headers": headers,
            "correlation_id": correlation_id,
        }
        try:
            data = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            data = None
        if not (isinstance(data, dict) and isinstance(data.get("error"), str)):
            snippet = response.text[:300].strip() if response.content else "(empty body)"
            return KubelineProtocolError(
                f"The broker at {self.endpoint} answered {call.route.method} {call.url} with HTTP "
                f"{response.status_code} and a body that is not a kubeline error: {snippet}",
                request_id=headers.get("x-request-id"),
                **common,
            )
        raw_details = data.get("details")
        details: dict[str, Any] = raw_details if isinstance(raw_details, dict) else {}
        request_id = headers.get("x-request-id")
        if request_id is None and isinstance(details.get("request_id"), str):
            request_id = details["request_id"]
        code: str = data["error"]
        cls = ERROR_CLASSES.get(code, KubelineError)
        raw_message = data.get("message")
        message: str = raw_message if isinstance(raw_message, str) else code
        return cls(message, code=code, details=details, request_id=request_id, **common)

    def _parse(self, call: PreparedCall, response: httpx2.Response, model: type[M]) -> M:
        try:
            data = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            raise KubelineProtocolError(
                f"The broker at {self.endpoint} answered {call.route.method} {call.url} with HTTP "
                f"{response.status_code} but the body is not JSON: {response.text[:300]!r}",
                status=response.status_code,
                method=call.route.method,
                url=call.url,
                correlation_id=call.correlation_id,
            ) from None
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}" for e in exc.errors()[:5]
            )
            raise KubelineProtocolError(
                f"The answer to {call.route.method} {call.url} does not match the kubeline SDK's "
                f"{model.__name__} model ({problems}); is the broker's version compatible with "
                f"kubeline-python {__version__}?",
                status=response.status_code,
                method=call.route.method,
                url=call.url,
                correlation_id=call.correlation_id,
            ) from None

    # --- failures to connect -------------------------------------------------------------------

    def _connection_error(self, call: PreparedCall, exc: Exception, attempts: int) -> KubelineError:
        method, url = call.route.method, call.url
        parts = urlsplit(self.endpoint)
        host = parts.hostname or "?"
        port = parts.port or (443 if parts.scheme == "https" else 80)
        where = f"the kubeline broker at {self.endpoint}"
        tried = f" after {attempts} attempts" if attempts > 1 else ""
        request = f"{method} {url}"
        common: dict[str, Any] = {"cause": exc, "method": method, "url": url, "correlation_id": call.correlation_id}
        causes = _cause_chain(exc)
        if isinstance(exc, (httpx2.UnsupportedProtocol, httpx2.InvalidURL, httpx2.ProxyError)):
            return KubelineConfigError(f"Cannot send {request}: {exc}", method=method, url=url)
        if isinstance(exc, httpx2.TimeoutException):
            if isinstance(exc, (httpx2.ConnectTimeout, httpx2.PoolTimeout)):
                phase = "connecting to" if isinstance(exc, httpx2.ConnectTimeout) else "waiting for a free connection to"
                return KubelineTimeoutError(
                    f"Timed out after {_secs(call.timeout.connect)} {phase} {where}{tried} "
                    f"({request}); nothing was sent. Check the endpoint and the network, or raise "
                    "the client's timeout=.",
                    reason="timeout",
                    request_sent=False,
                    **common,
                )
            waited = call.timeout.write if isinstance(exc, httpx2.WriteTimeout) else call.timeout.read
            if call.route.execute:
                advice = (
                    " The command may have run on the cluster: it was not sent again (correlation "
                    f"id {call.correlation_id}). Raise the client's timeout= (or give execute a "
                    "timeout=) if the command is slow, or check that the broker is healthy."
                )
            else:
                advice = " Raise the client's timeout= if the broker is slow, or check that it is healthy."
            return KubelineTimeoutError(
                f"No answer from {where} within {_secs(waited)}{tried} ({request}); the request "
                f"was sent.{advice}",
                reason="timeout",
                request_sent=True,
                **common,
            )
        if isinstance(exc, httpx2.ConnectError):
            if any(isinstance(c, ssl.SSLError) for c in causes):
                ssl_detail = next(str(c) for c in causes if isinstance(c, ssl.SSLError))
                return KubelineConnectionError(
                    f"Cannot reach {where}: the TLS handshake failed ({ssl_detail}){tried} "
                    f"({request}). Check that the endpoint's scheme matches the broker (http:// "
                    "or https://) and that its certificate is trusted (verify= takes a CA bundle).",
                    reason="tls",
                    request_sent=False,
                    **common,
                )
            if any(isinstance(c, socket.gaierror) for c in causes):
                return KubelineConnectionError(
                    f"Cannot reach {where}: the host name {host!r} does not resolve (DNS lookup "
                    f"failed){tried} ({request}). Check the endpoint (KUBELINE_ENDPOINT).",
                    reason="dns",
                    request_sent=False,
                    **common,
                )
            if any(isinstance(c, ConnectionRefusedError) for c in causes):
                return KubelineConnectionError(
                    f"Cannot reach {where}: connection refused{tried} ({request}). Nothing listens "
                    f"on {host}:{port}: check that the broker is running and that the endpoint "
                    "(KUBELINE_ENDPOINT) is right.",
                    reason="refused",
                    request_sent=False,
                    **common,
                )
            return KubelineConnectionError(
                f"Cannot reach {where}: {_describe(causes)}{tried} ({request}). Check the endpoint "
                "and the network.",
                reason="network",
                request_sent=False,
                **common,
            )
        consequence = (
            f" The command may have run on the cluster: it was not sent again (correlation id "
            f"{call.correlation_id})."
            if call.route.execute
            else ""
        )
        if isinstance(exc, (httpx2.RemoteProtocolError, httpx2.ReadError, httpx2.WriteError, httpx2.CloseError)):
            return KubelineConnectionError(
                f"The connection to {where} broke before an answer came: {_describe(causes)}"
                f"{tried} ({request}).{consequence} Check that the broker is healthy (a proxy in "
                "between, or a restart).",
                reason="closed",
                request_sent=True,
                **common,
            )
        return KubelineConnectionError(
            f"Request to {where} failed: {_describe(causes)}{tried} ({request}).{consequence}",
            reason="protocol" if isinstance(exc, httpx2.ProtocolError) else "network",
            request_sent=True,
            **common,
        )

    # --- retry policy --------------------------------------------------------------------------

    def _retry_delay_after_error(self, call: PreparedCall, error: KubelineError, attempt: int) -> Optional[float]:
        """Seconds to wait before sending again, or ``None`` not to retry this answer."""
        if error.status not in RETRYABLE_STATUSES:
            return None
        if error.status == 503 and call.route.execute and not _execute_503_is_safe(error):
            return None
        retry_after = _retry_after_seconds(error.headers, error.details)
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None
            return retry_after + random.uniform(0, min(0.25, 0.1 * retry_after + 0.05))
        return backoff(attempt)

    def _retry_delay_after_transport(self, call: PreparedCall, error: KubelineError, attempt: int) -> Optional[float]:
        if not isinstance(error, KubelineConnectionError):
            return None  # a configuration error: the same request fails the same way
        if error.reason in ("dns", "tls"):
            return None  # needs a change of endpoint or certificate, not time
        if error.request_sent:
            # The broker may have acted on it. Only requests that are safe to repeat are repeated
            # (never POST /debug/execute: the command may have run). A timeout already used up the
            # caller's time budget, so it is not repeated either.
            if not call.route.idempotent or isinstance(error, KubelineTimeoutError):
                return None
        return backoff(attempt)

    def _log_retry(self, call: PreparedCall, why: str, delay: float, attempt: int) -> None:
        log.info(
            "kubeline: retrying %s %s in %.2f s (%s; retry %d of %d, correlation id %s)",
            call.route.method,
            call.url,
            delay,
            why,
            attempt + 1,
            self.max_retries,
            call.correlation_id,
        )


def backoff(attempt: int) -> float:
    """Exponential backoff with jitter: 0.25 s, 0.5 s, 1 s … up to 8 s, each minus up to 25 %."""
    delay: float = min(INITIAL_BACKOFF * (2**attempt), MAX_BACKOFF)
    return delay * (1 - random.random() * 0.25)


def _retry_after_seconds(headers: Mapping[str, str], details: Mapping[str, Any]) -> Optional[float]:
    value = headers.get("retry-after")
    if value is not None:
        value = value.strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value) if value else None
            if parsed is not None:
                return max(0.0, parsed.timestamp() - time.time())
    seconds = details.get("retry_after")
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
        return max(0.0, float(seconds))
    return None


def _execute_503_is_safe(error: KubelineError) -> bool:
    """Whether a 503 to ``POST /debug/execute`` says that nothing was queued.

    The broker names a ``result_id`` once the command was queued (its agent's link was lost while
    it ran: it may have run). A full queue (``queue_full``, with ``Retry-After``), an agent that is
    not connected, and an audit trail that cannot be written all answer before anything is queued.
    A store failure (``details.reason``) is not retried: it may come after the command was queued.
    """
    details = error.details
    if "result_id" in details:
        return False
    if details.get("code") in ("queue_full", "audit_unavailable"):
        return True
    return "last_seen" in details and "cluster_id" in details


def _cause_chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: Optional[BaseException] = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _describe(causes: list[BaseException]) -> str:
    innermost = causes[-1]
    text = str(innermost) or type(innermost).__name__
    if isinstance(innermost, OSError) and not isinstance(innermost, (socket.gaierror, ssl.SSLError)):
        text = f"{type(innermost).__name__}: {text}"
    return text


def _secs(value: Optional[float]) -> str:
    if value is None:
        return "no limit"
    return f"{value:g} s"
