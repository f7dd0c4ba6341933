"""The asynchronous client and its debug-session context manager.

It mirrors :mod:`kubeline._client` method for method (``tests/test_unit.py`` checks that the two
expose the same API); every call that talks to the broker is a coroutine."""

from __future__ import annotations

import copy
import logging
from types import TracebackType
from typing import Any, Mapping, Optional, Sequence, Union

import anyio
import httpx2

from . import _base
from ._base import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_AFTER,
    DEFAULT_TIMEOUT,
    EXECUTE_GRACE,
    BaseClient,
    PreparedCall,
    check_args,
    check_id,
)
from ._client import _UNSET, _check_window, _dict, _next_window, _note_close_failure, _now, _rate_limits
from ._errors import KubelineConfigError, KubelineError, NotFoundError
from ._models import (
    AgentTokenCreated,
    AgentTokenInfo,
    AgentTokenList,
    ApiKeyCreated,
    ApiKeyInfo,
    ApiKeyList,
    ClusterList,
    ClusterStatusInfo,
    CommandResult,
    CreateAgentTokenRequest,
    CreateApiKeyRequest,
    CreateSessionRequest,
    ExecuteRequest,
    Health,
    RateLimits,
    Scope,
    SessionClosed,
    SessionCreated,
    SessionInfo,
    SessionList,
    SessionStatus,
)

log = logging.getLogger("kubeline")

_CLOSE_ON_ERROR_TIMEOUT = 10.0
"""Seconds the session's close may take when the body raised or was cancelled."""

__all__ = ["AsyncClient", "AsyncDebugSession"]


class AsyncClient(BaseClient):
    """Asynchronous client of a kubeline broker (asyncio or trio, through anyio).

    ::

        aclient = kubeline.AsyncClient(endpoint="http://broker:8080", api_key="kl_…")
        async with aclient.debug_session("prod") as s:
            r = await s.execute("get", ["pods", "-A"])
            print(r.output, r.exit_code)

    Args:
        endpoint: the broker's base URL; default ``$KUBELINE_ENDPOINT``.
        api_key: an API key (or JWT) sent as ``Authorization: Bearer …``; default
            ``$KUBELINE_API_KEY``. Only ``health()`` works without one.
        timeout: seconds to wait for any answer (default 60; ``None`` waits forever). An
            ``execute`` given a command ``timeout`` waits at least that plus 5 s, so that the
            broker's own answer (the result, or its 504) arrives first.
        max_retries: how many times a request is sent again after a 429 or 503 answer, or after
            a connection failure that is safe to repeat (default 2). See :meth:`execute` for what
            is never repeated.
        max_retry_after: the longest ``Retry-After`` (seconds) the client sleeps through before
            sending again; a longer one is raised at once as the error (default 60).
        service_identity: sent as ``X-Service-Identity`` (logged by the broker).
        default_headers: more headers for every request.
        verify: TLS verification: ``True`` (system trust store), ``False``, a CA bundle path or
            an ``ssl.SSLContext``.
        http_client: an ``httpx2.AsyncClient`` to use instead of the client's own (it is not closed by
            :meth:`close`).
    """

    def __init__(
        self,
        endpoint: Optional[str] = None,
        api_key: Optional[str] = None,
        *,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        service_identity: Optional[str] = None,
        default_headers: Optional[Mapping[str, str]] = None,
        verify: Any = True,
        http_client: Optional[httpx2.AsyncClient] = None,
    ) -> None:
        self._configure(
            endpoint=endpoint,
            api_key=api_key,
            timeout=timeout,
            max_retries=max_retries,
            max_retry_after=max_retry_after,
            service_identity=service_identity,
            default_headers=default_headers,
        )
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx2.AsyncClient(verify=_base.tls_verify(verify), trust_env=True)

    def __repr__(self) -> str:
        return f"kubeline.AsyncClient(endpoint={self.endpoint!r})"

    # --- lifecycle -----------------------------------------------------------------------------

    def with_options(
        self,
        *,
        api_key: Optional[str] = _UNSET,
        timeout: Optional[float] = _UNSET,
        max_retries: int = _UNSET,
        max_retry_after: float = _UNSET,
    ) -> "AsyncClient":
        """A copy of this client with other settings, sharing its connection pool.

        ``client.with_options(max_retries=0).list_clusters()``
        """
        other = copy.copy(self)
        other._owns_http = False
        other.default_headers = dict(self.default_headers)
        if api_key is not _UNSET:
            other.api_key = _base.resolve_api_key(api_key)
        if timeout is not _UNSET:
            if timeout is not None and timeout <= 0:
                _base.make_timeout(timeout)  # raises the configuration error
            other.timeout = timeout
        if max_retries is not _UNSET:
            if max_retries < 0:
                raise KubelineConfigError(f"max_retries must be >= 0, not {max_retries}")
            other.max_retries = max_retries
        if max_retry_after is not _UNSET:
            other.max_retry_after = max_retry_after
        return other

    async def aclose(self) -> None:
        """Close the connection pool (when the client made it)."""
        if self._owns_http:
            await self._http.aclose()

    close = aclose

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- transport -----------------------------------------------------------------------------

    async def _send(self, call: PreparedCall) -> httpx2.Response:
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    call.route.method,
                    call.url,
                    params=call.params or None,
                    json=call.json_body,
                    headers=call.headers,
                    timeout=call.timeout,
                )
            except (httpx2.RequestError, httpx2.InvalidURL) as exc:
                error = self._connection_error(call, exc, attempt + 1)
                delay = (
                    self._retry_delay_after_transport(call, error, attempt)
                    if attempt < self.max_retries
                    else None
                )
                if delay is None:
                    raise error from None
                self._log_retry(call, f"connection failed: {getattr(error, 'reason', '?')}", delay, attempt)
                await anyio.sleep(delay)
                attempt += 1
                continue
            if response.status_code in call.ok_statuses:
                return response
            error = self._error_from_response(call, response)
            delay = (
                self._retry_delay_after_error(call, error, attempt) if attempt < self.max_retries else None
            )
            if delay is None:
                raise error
            self._log_retry(call, f"{error.status} {error.code}", delay, attempt)
            await anyio.sleep(delay)
            attempt += 1

    # --- health --------------------------------------------------------------------------------

    async def health(self) -> Health:
        """``GET /health``: the broker's health. An unhealthy broker (503) is returned, not
        raised: ``status == "unhealthy"`` with a ``reason``."""
        call = self._prepare("health", also_ok=frozenset({503}))
        return self._parse(call, await self._send(call), Health)

    # --- sessions ------------------------------------------------------------------------------

    async def create_session(
        self,
        cluster_id: str,
        *,
        metadata: Optional[Mapping[str, Any]] = None,
        correlation_id: Optional[str] = None,
    ) -> SessionCreated:
        """``POST /debug/session``: open a debug session on a cluster. Prefer
        :meth:`debug_session`, which closes it again."""
        body = CreateSessionRequest(cluster_id=check_id("cluster_id", cluster_id), metadata=_dict(metadata))
        call = self._prepare("create_session", body=body, correlation_id=correlation_id)
        return self._parse(call, await self._send(call), SessionCreated)

    async def get_session(self, session_id: str) -> SessionInfo:
        """``GET /debug/session/{session_id}``."""
        call = self._prepare("get_session", path_params={"session_id": session_id})
        return self._parse(call, await self._send(call), SessionInfo)

    async def close_session(self, session_id: str) -> SessionClosed:
        """``DELETE /debug/session/{session_id}``: close a session (closing a closed one answers
        its first ``closed_at`` again)."""
        call = self._prepare("close_session", path_params={"session_id": session_id})
        return self._parse(call, await self._send(call), SessionClosed)

    async def list_sessions(
        self,
        *,
        cluster_id: Optional[str] = None,
        status: Optional[SessionStatus] = None,
        limit: Optional[int] = None,
    ) -> SessionList:
        """``GET /debug/sessions``: the caller's sessions (an admin's: all on its clusters),
        newest first (``limit`` default 50, at most 1000)."""
        call = self._prepare(
            "list_sessions", params={"cluster_id": cluster_id, "status": status, "limit": limit}
        )
        return self._parse(call, await self._send(call), SessionList)

    def debug_session(
        self, cluster_id: str, *, metadata: Optional[Mapping[str, Any]] = None
    ) -> "AsyncDebugSession":
        """A debug session on ``cluster_id`` as a context manager: created on entry, closed on
        exit, also when the body raises::

            async with aclient.debug_session("prod") as s:
                print((await s.execute("get", ["pods", "-A"])).output)
        """
        return AsyncDebugSession(self, check_id("cluster_id", cluster_id), metadata=metadata)

    # --- commands ------------------------------------------------------------------------------

    async def execute(
        self,
        cluster_id: str,
        session_id: str,
        command_type: str,
        args: Optional[Sequence[str]] = None,
        *,
        timeout: Optional[float] = None,
        max_output_bytes: Optional[int] = None,
        correlation_id: Optional[str] = None,
    ) -> CommandResult:
        """``POST /debug/execute``: run a read-only kubectl command and wait for its result.

        A command kubectl would run and fail (NotFound …) is returned with ``status ==
        "failed"``, kubectl's message in ``error`` and its ``exit_code``. A command the broker
        refuses (a write verb, a disallowed flag) raises :class:`InvalidRequestError` naming the
        reason; one that outlives ``timeout`` raises :class:`CommandTimeoutError`.

        Retries: a 429, or a 503 that says nothing was queued (queue full, agent not connected),
        is sent again after ``Retry-After``, as is a connection that could not be opened. **A
        request that was sent and whose answer was lost (connection dropped, client timeout) is
        never sent again: the command may have run**; the raised
        :class:`KubelineConnectionError` has ``request_sent=True`` and its ``correlation_id``.

        Args:
            timeout: seconds the broker waits for the command (its default 30, at most its
                ``--max-timeout``). The client then waits for the answer at least this plus 5 s
                (or its own ``timeout`` if longer); without it, the client's ``timeout``.
            max_output_bytes: output budget for this command (at most the broker's).
            correlation_id: sent as ``X-Correlation-ID`` and stored with the result.
        """
        body = ExecuteRequest(
            cluster_id=check_id("cluster_id", cluster_id),
            session_id=check_id("session_id", session_id),
            command_type=check_id("command_type", command_type),
            args=check_args(args),
            timeout=timeout,
            max_output_bytes=max_output_bytes,
        )
        call = self._prepare(
            "execute",
            body=body,
            correlation_id=correlation_id,
            min_wait=None if timeout is None else timeout + EXECUTE_GRACE,
        )
        return self._parse(call, await self._send(call), CommandResult)

    async def get_result(
        self, result_id: str, *, offset: Optional[int] = None, limit: Optional[int] = None
    ) -> CommandResult:
        """``GET /debug/result/{result_id}``: a result again (``pending`` while it runs).

        With ``offset`` and/or ``limit`` (bytes; ``limit`` default 65536, at most 4194304) the
        answer's ``output`` holds only that window of the stored output and ``window`` says
        where it is (``next_offset`` is ``None`` at the end). See :meth:`read_output`."""
        _check_window(offset, limit)
        call = self._prepare(
            "get_result", path_params={"result_id": result_id}, params={"offset": offset, "limit": limit}
        )
        return self._parse(call, await self._send(call), CommandResult)

    async def read_output(self, result_id: str, *, limit: Optional[int] = None) -> str:
        """The whole stored output of a result, read window by window (``limit`` bytes each)
        so that no single answer is large. Read a finished result: a pending one has no output
        yet."""
        _check_window(None, limit)
        parts: list[str] = []
        offset = 0
        while True:
            result = await self.get_result(result_id, offset=offset, limit=limit)
            step = _next_window(result, offset, parts)
            if step is None:
                return "".join(parts)
            offset = step

    # --- clusters ------------------------------------------------------------------------------

    async def list_clusters(self) -> ClusterList:
        """``GET /clusters``: the clusters the credential reaches, with their link state."""
        call = self._prepare("list_clusters")
        return self._parse(call, await self._send(call), ClusterList)

    async def cluster_status(self, cluster_id: str) -> ClusterStatusInfo:
        """``GET /clusters/{cluster_id}/status``."""
        call = self._prepare("cluster_status", path_params={"cluster_id": cluster_id})
        return self._parse(call, await self._send(call), ClusterStatusInfo)

    # --- credentials (admin) -------------------------------------------------------------------

    async def create_api_key(
        self,
        scope: Scope,
        *,
        clusters: Optional[Sequence[str]] = None,
        expires_in_seconds: Optional[int] = None,
        name: Optional[str] = None,
        rate_limits: Union[RateLimits, Mapping[str, Optional[int]], None] = None,
    ) -> ApiKeyCreated:
        """``POST /admin/api-keys`` (admin): a new API key; its secret (``key``) is in this
        answer only."""
        body = CreateApiKeyRequest(
            scope=scope,
            clusters=None if clusters is None else check_args(clusters),
            expires_in_seconds=expires_in_seconds,
            name=name,
            rate_limits=_rate_limits(rate_limits),
        )
        call = self._prepare("create_api_key", body=body)
        return self._parse(call, await self._send(call), ApiKeyCreated)

    async def list_api_keys(self) -> ApiKeyList:
        """``GET /admin/api-keys`` (admin): every key, revoked ones included; never secrets."""
        call = self._prepare("list_api_keys")
        return self._parse(call, await self._send(call), ApiKeyList)

    async def revoke_api_key(self, key_id: str) -> ApiKeyInfo:
        """``DELETE /admin/api-keys/{key_id}`` (admin)."""
        call = self._prepare("revoke_api_key", path_params={"key_id": key_id})
        return self._parse(call, await self._send(call), ApiKeyInfo)

    async def create_agent_token(self, cluster_id: str, *, overlap_seconds: Optional[int] = None) -> AgentTokenCreated:
        """``POST /admin/agent-tokens`` (admin): a new agent token for a cluster (shown once);
        the cluster's earlier API-made tokens end after ``overlap_seconds`` (default 300)."""
        body = CreateAgentTokenRequest(cluster_id=check_id("cluster_id", cluster_id), overlap_seconds=overlap_seconds)
        call = self._prepare("create_agent_token", body=body)
        return self._parse(call, await self._send(call), AgentTokenCreated)

    async def list_agent_tokens(self, *, cluster_id: Optional[str] = None) -> AgentTokenList:
        """``GET /admin/agent-tokens`` (admin)."""
        call = self._prepare("list_agent_tokens", params={"cluster_id": cluster_id})
        return self._parse(call, await self._send(call), AgentTokenList)

    async def revoke_agent_token(self, token_id: str) -> AgentTokenInfo:
        """``DELETE /admin/agent-tokens/{token_id}`` (admin)."""
        call = self._prepare("revoke_agent_token", path_params={"token_id": token_id})
        return self._parse(call, await self._send(call), AgentTokenInfo)


class AsyncDebugSession:
    """A debug session bound to an :class:`AsyncClient`; see :meth:`AsyncClient.debug_session`.

    Created on ``__aenter__`` (or :meth:`open`), closed on ``__aexit__`` (or :meth:`close`). When
    the ``with`` body raises, the session is still closed; a failure to close it then is logged
    (and noted on the body's exception) rather than hiding the body's exception."""

    def __init__(self, client: AsyncClient, cluster_id: str, *, metadata: Optional[Mapping[str, Any]] = None) -> None:
        self.client = client
        self.cluster_id = cluster_id
        self.metadata = _dict(metadata)
        self.created: Optional[SessionCreated] = None
        self.closed: Optional[SessionClosed] = None

    def __repr__(self) -> str:
        sid = self.created.session_id if self.created else None
        return f"AsyncDebugSession(cluster_id={self.cluster_id!r}, session_id={sid!r}, open={self.is_open})"

    @property
    def session_id(self) -> str:
        if self.created is None:
            raise KubelineError(
                "This debug session is not open yet: use it as `async with aclient.debug_session(...) as s:` or call open()"
            )
        return self.created.session_id

    @property
    def is_open(self) -> bool:
        return self.created is not None and self.closed is None

    async def open(self) -> "AsyncDebugSession":
        if self.created is None:
            self.created = await self.client.create_session(self.cluster_id, metadata=self.metadata)
        return self

    async def close(self) -> Optional[SessionClosed]:
        """Close the session (once; a session the broker no longer knows counts as closed)."""
        if self.created is not None and self.closed is None:
            try:
                self.closed = await self.client.close_session(self.created.session_id)
            except NotFoundError:
                self.closed = SessionClosed(
                    session_id=self.created.session_id, status="closed", closed_at=_now()
                )
        return self.closed

    async def __aenter__(self) -> "AsyncDebugSession":
        return await self.open()

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if exc is None:
            await self.close()
            return
        # Close even when the body was cancelled: shielded from the cancellation, bounded in time.
        with anyio.CancelScope(shield=True):
            try:
                with anyio.fail_after(_CLOSE_ON_ERROR_TIMEOUT):
                    await self.close()
            except Exception as close_error:  # the body's exception is the one to see
                _note_close_failure(self, exc, close_error)

    async def info(self) -> SessionInfo:
        """``GET /debug/session/{id}`` for this session."""
        return await self.client.get_session(self.session_id)

    async def execute(
        self,
        command_type: str,
        args: Optional[Sequence[str]] = None,
        *,
        timeout: Optional[float] = None,
        max_output_bytes: Optional[int] = None,
        correlation_id: Optional[str] = None,
    ) -> CommandResult:
        """Run a command in this session; see :meth:`AsyncClient.execute`."""
        return await self.client.execute(
            self.cluster_id,
            self.session_id,
            command_type,
            args,
            timeout=timeout,
            max_output_bytes=max_output_bytes,
            correlation_id=correlation_id,
        )

    async def get_result(self, result_id: str, *, offset: Optional[int] = None, limit: Optional[int] = None) -> CommandResult:
        return await self.client.get_result(result_id, offset=offset, limit=limit)

    async def read_output(self, result_id: str, *, limit: Optional[int] = None) -> str:
        return await self.client.read_output(result_id, limit=limit)
