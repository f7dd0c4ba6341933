"""Typed bodies of the kubeline REST API (pydantic v2).

Each model mirrors one schema of the broker's OpenAPI document (``broker/openapi.json``) field
for field: a property the schema requires has no default here, an optional one defaults to
``None``. ``tests/test_models_drift.py`` checks that against the document, so a broker change
that adds or removes a field fails the SDK's tests.

Answers (``*Info``, ``*List``, ``CommandResult`` …) keep fields a newer broker adds
(``extra="allow"``) so an older SDK still parses them; request bodies refuse unknown fields
(``extra="forbid"``) so a misspelt field fails here rather than being ignored by the broker.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict

__all__ = [
    "AgentTokenCreated",
    "AgentTokenInfo",
    "AgentTokenList",
    "ApiKeyCreated",
    "ApiKeyInfo",
    "ApiKeyList",
    "ClusterList",
    "ClusterStatus",
    "ClusterStatusInfo",
    "ClusterSummary",
    "CommandResult",
    "CommandType",
    "CreateAgentTokenRequest",
    "CreateApiKeyRequest",
    "CreateSessionRequest",
    "ErrorBody",
    "ErrorCode",
    "ExecuteRequest",
    "Health",
    "RateLimits",
    "ResultStatus",
    "OutputWindow",
    "ResultWindow",
    "SCHEMA_MODELS",
    "Scope",
    "SessionClosed",
    "SessionCreated",
    "SessionInfo",
    "SessionList",
    "SessionStatus",
    "SessionSummary",
    "Truncation",
]

# --- enums (the schema's `enum` lists; checked by the drift test) ------------------------------

ResultStatus = Literal["pending", "completed", "failed", "timeout"]
"""Outcome of a command (`ResultStatus`)."""

SessionStatus = Literal["active", "closed", "expired"]
"""Lifecycle state of a debug session (`SessionStatus`)."""

ClusterStatus = Literal["connected", "disconnected"]
"""Link state of a cluster's agent (`ClusterStatus`)."""

Scope = Literal["read", "admin"]
"""What a credential may do (`Scope`)."""

ErrorCode = Literal[
    "invalid_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "payload_too_large",
    "unsupported_media_type",
    "rate_limited",
    "internal_error",
    "service_unavailable",
    "timeout",
]
"""Machine-readable class of an error answer (`ErrorCode`)."""

CommandType = Literal[
    "get",
    "version",
    "cluster-info",
    "describe",
    "logs",
    "events",
    "top",
    "rollout",
    "api-resources",
    "api-versions",
    "auth",
    "explain",
]
"""The read-only kubectl command types the broker runs (`ExecuteRequest.command_type`).

``ExecuteRequest.command_type`` is typed ``str`` on purpose: the broker is the one judge of
what runs, and a refused command (``delete`` …) gets its 400 ``InvalidRequestError`` naming the
reason rather than a client-side validation error."""


class _Answer(BaseModel):
    """A body the broker sends."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class _Body(BaseModel):
    """A body the client sends."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --- health ------------------------------------------------------------------------------------


class Health(_Answer):
    """Body of ``GET /health``."""

    status: str
    """``healthy``, or ``unhealthy`` when the broker's store cannot be reached."""
    version: str
    """kubeline version of the answering broker."""
    timestamp: datetime
    """When the check ran."""
    uptime_seconds: int
    """Seconds since this broker process started."""
    reason: Optional[str] = None
    """Why the broker is unhealthy; absent when healthy."""


# --- sessions ----------------------------------------------------------------------------------


class CreateSessionRequest(_Body):
    """Body of ``POST /debug/session``."""

    cluster_id: str
    """Cluster the session debugs: 1 to 128 letters, digits, ``-``, ``_`` or ``.``."""
    metadata: Optional[dict[str, Any]] = None
    """Free-form caller metadata (``user``, ``correlation_id``, …), kept with the session."""


class SessionCreated(_Answer):
    """Answer to ``POST /debug/session``."""

    session_id: str
    cluster_id: str
    status: SessionStatus
    created_at: datetime
    expires_at: datetime
    """When the session stops accepting commands."""


class SessionInfo(_Answer):
    """Answer to ``GET /debug/session/{id}``."""

    session_id: str
    cluster_id: str
    status: SessionStatus
    created_at: datetime
    expires_at: datetime
    last_activity: datetime
    """When the last command ran in it (the creation time before any)."""
    commands_executed: int


class SessionClosed(_Answer):
    """Answer to ``DELETE /debug/session/{id}``."""

    session_id: str
    status: SessionStatus
    """Always ``closed``."""
    closed_at: datetime


class SessionSummary(_Answer):
    """One row of ``GET /debug/sessions``."""

    session_id: str
    cluster_id: str
    status: SessionStatus
    created_at: datetime
    last_activity: datetime


class SessionList(_Answer):
    """Answer to ``GET /debug/sessions``."""

    sessions: list[SessionSummary]
    """Matching sessions, newest first, at most ``limit``."""
    total: int
    """Number of sessions returned."""


# --- commands and results ----------------------------------------------------------------------


class ExecuteRequest(_Body):
    """Body of ``POST /debug/execute``."""

    cluster_id: str
    session_id: str
    command_type: str
    """kubectl command type (see :data:`CommandType`)."""
    args: list[str]
    """Arguments as kubectl takes them after the command type; parsed, never run by a shell."""
    timeout: Optional[float] = None
    """Seconds the broker waits for the result (default 30, at most its ``--max-timeout``)."""
    max_output_bytes: Optional[int] = None
    """Output budget for this command, at most the broker's ``--max-output-bytes``."""


class Truncation(_Answer):
    """How much output was left out of a result."""

    omitted_bytes: int
    limit_bytes: int


class OutputWindow(_Answer):
    """Which part of a result's stored output a windowed ``GET /debug/result/{id}`` answer holds."""

    offset: int
    """Byte offset of the window in the stored output."""
    length: int
    """Bytes of output in the window (the UTF-8 length of ``output``)."""
    total_bytes: int
    """Bytes of stored output in all."""
    next_offset: Optional[int]
    """Where the next window starts; ``None`` when this one reaches the end."""


ResultWindow = OutputWindow
"""Another name of :class:`OutputWindow`."""


class CommandResult(_Answer):
    """Answer to ``POST /debug/execute`` and ``GET /debug/result/{result_id}``."""

    result_id: str
    """Identifier to fetch this result again."""
    session_id: str
    cluster_id: str
    status: ResultStatus
    output: str
    """What the command printed on standard output (one window of it when ``window`` is set)."""
    error: Optional[str]
    """What the command printed on standard error, or why it could not run; ``None`` on success."""
    exit_code: Optional[int]
    """Exit code as kubectl would report it; ``None`` while pending."""
    execution_time_ms: int
    executed_at: datetime
    correlation_id: str
    truncated: Optional[Truncation] = None
    """Set when the output was cut to fit the output budget."""
    window: Optional[OutputWindow] = None
    """Set when the result was read by window (``get_result(..., offset=, limit=)``): ``output``
    then holds only that part of the stored output."""

    @property
    def succeeded(self) -> bool:
        """``True`` when the command completed with exit code 0."""
        return self.status == "completed" and self.exit_code == 0


# --- clusters ----------------------------------------------------------------------------------


class ClusterSummary(_Answer):
    """One row of ``GET /clusters``."""

    cluster_id: str
    name: str
    status: ClusterStatus
    agent_version: Optional[str]
    last_seen: Optional[datetime]
    labels: Optional[dict[str, str]] = None
    """The cluster's labels (``env=prod`` …) as its agent gave them; ``{}`` when none."""


class ClusterList(_Answer):
    """Answer to ``GET /clusters``."""

    clusters: list[ClusterSummary]


class ClusterStatusInfo(_Answer):
    """Answer to ``GET /clusters/{cluster_id}/status``."""

    cluster_id: str
    status: ClusterStatus
    agent_version: Optional[str]
    last_seen: Optional[datetime]
    active_sessions: int
    queue_depth: int
    """Commands queued for the agent and not yet finished."""
    kubernetes_version: Optional[str] = None
    """Kubernetes version the agent reported."""
    labels: Optional[dict[str, str]] = None
    """The cluster's labels as its agent gave them; ``{}`` when none."""


# --- credentials (admin) -----------------------------------------------------------------------


class RateLimits(_Body):
    """A credential's own rate limits, requests per minute per class; ``None`` keeps the broker's
    default, 0 means unlimited."""

    execute: Optional[int] = None
    session_create: Optional[int] = None
    standard: Optional[int] = None


class CreateApiKeyRequest(_Body):
    """Body of ``POST /admin/api-keys``."""

    scope: Scope
    clusters: Optional[list[str]] = None
    """Cluster ids and globs (``prod-*``), ``!`` before one to deny; default every cluster."""
    expires_in_seconds: Optional[int] = None
    name: Optional[str] = None
    rate_limits: Optional[RateLimits] = None


class ApiKeyInfo(_Answer):
    """An API key as listed: never its secret."""

    id: str
    scope: Scope
    clusters: list[str]
    created_at: datetime
    expires_at: Optional[datetime]
    revoked_at: Optional[datetime]
    last_used_at: Optional[datetime]
    bootstrap: bool
    name: Optional[str] = None
    rate_limits: Optional[RateLimits] = None


class ApiKeyCreated(ApiKeyInfo):
    """Answer to ``POST /admin/api-keys``: the record and the secret, shown this once."""

    key: str
    """The secret to send as ``Authorization: Bearer …``; it cannot be read again."""


class ApiKeyList(_Answer):
    """Answer to ``GET /admin/api-keys``."""

    api_keys: list[ApiKeyInfo]


class CreateAgentTokenRequest(_Body):
    """Body of ``POST /admin/agent-tokens``."""

    cluster_id: str
    overlap_seconds: Optional[int] = None
    """How long the cluster's earlier tokens keep working (default 300; 0 ends them at once)."""


class AgentTokenInfo(_Answer):
    """An agent token as listed: never its secret."""

    id: str
    cluster_id: str
    created_at: datetime
    expires_at: Optional[datetime]
    revoked_at: Optional[datetime]
    last_used_at: Optional[datetime]
    bootstrap: bool


class AgentTokenCreated(AgentTokenInfo):
    """Answer to ``POST /admin/agent-tokens``: the token, shown this once."""

    token: str
    replaced: list[AgentTokenInfo]
    """The cluster's earlier tokens, with the end of their overlap."""


class AgentTokenList(_Answer):
    """Answer to ``GET /admin/agent-tokens``."""

    agent_tokens: list[AgentTokenInfo]


# --- errors ------------------------------------------------------------------------------------


class ErrorBody(_Answer):
    """Every non-2xx body: ``{"error", "message", "details"}``.

    ``error`` is kept as ``str`` so that a code this SDK does not know yet still parses (it then
    raises the base :class:`kubeline.KubelineError`)."""

    error: str
    message: str
    details: Optional[dict[str, Any]] = None


SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    "AgentTokenCreated": AgentTokenCreated,
    "AgentTokenInfo": AgentTokenInfo,
    "AgentTokenList": AgentTokenList,
    "ApiKeyCreated": ApiKeyCreated,
    "ApiKeyInfo": ApiKeyInfo,
    "ApiKeyList": ApiKeyList,
    "ClusterList": ClusterList,
    "ClusterStatusInfo": ClusterStatusInfo,
    "ClusterSummary": ClusterSummary,
    "CommandResult": CommandResult,
    "CreateAgentTokenRequest": CreateAgentTokenRequest,
    "CreateApiKeyRequest": CreateApiKeyRequest,
    "CreateSessionRequest": CreateSessionRequest,
    "ErrorBody": ErrorBody,
    "ExecuteRequest": ExecuteRequest,
    "Health": Health,
    "RateLimits": RateLimits,
    "SessionClosed": SessionClosed,
    "SessionCreated": SessionCreated,
    "SessionInfo": SessionInfo,
    "SessionList": SessionList,
    "SessionSummary": SessionSummary,
    "Truncation": Truncation,
}
"""OpenAPI schema name → the model that mirrors it (the drift test walks this). ``OutputWindow``
is checked too once the broker's document has it (it arrived with windowed result reads)."""
