"""kubeline: Python client for the kubeline broker.

Open a debug session on a Kubernetes cluster of a fleet, run read-only kubectl-style commands in
it, read their results::

    import kubeline

    client = kubeline.Client(endpoint="http://broker:8080", api_key="kl_…")
    with client.debug_session("prod") as s:
        r = s.execute("get", ["pods", "-A"])
        print(r.output, r.exit_code)

    aclient = kubeline.AsyncClient()          # endpoint and key from KUBELINE_ENDPOINT / KUBELINE_API_KEY
    async with aclient.debug_session("prod") as s:
        r = await s.execute("version")
"""

from ._async_client import AsyncClient, AsyncDebugSession
from ._base import ENV_API_KEY, ENV_ENDPOINT
from ._client import Client, DebugSession
from ._errors import (
    ERROR_CLASSES,
    AuthenticationError,
    BadRequestError,
    CommandTimeoutError,
    ForbiddenError,
    InternalServerError,
    InvalidRequestError,
    KubelineConfigError,
    KubelineConnectionError,
    KubelineError,
    KubelineProtocolError,
    KubelineTimeoutError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    ServiceUnavailableError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
)
from ._models import (
    AgentTokenCreated,
    AgentTokenInfo,
    AgentTokenList,
    ApiKeyCreated,
    ApiKeyInfo,
    ApiKeyList,
    ClusterList,
    ClusterStatus,
    ClusterStatusInfo,
    ClusterSummary,
    CommandResult,
    CommandType,
    CreateAgentTokenRequest,
    CreateApiKeyRequest,
    CreateSessionRequest,
    ErrorBody,
    ErrorCode,
    ExecuteRequest,
    Health,
    OutputWindow,
    RateLimits,
    ResultStatus,
    ResultWindow,
    Scope,
    SessionClosed,
    SessionCreated,
    SessionInfo,
    SessionList,
    SessionStatus,
    SessionSummary,
    Truncation,
)
from ._version import __version__

__all__ = [
    "ENV_API_KEY",
    "ENV_ENDPOINT",
    "ERROR_CLASSES",
    "AgentTokenCreated",
    "AgentTokenInfo",
    "AgentTokenList",
    "ApiKeyCreated",
    "ApiKeyInfo",
    "ApiKeyList",
    "AsyncClient",
    "AsyncDebugSession",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ClusterList",
    "ClusterStatus",
    "ClusterStatusInfo",
    "ClusterSummary",
    "CommandResult",
    "CommandTimeoutError",
    "CommandType",
    "CreateAgentTokenRequest",
    "CreateApiKeyRequest",
    "CreateSessionRequest",
    "DebugSession",
    "ErrorBody",
    "ErrorCode",
    "ExecuteRequest",
    "ForbiddenError",
    "Health",
    "InternalServerError",
    "InvalidRequestError",
    "KubelineConfigError",
    "KubelineConnectionError",
    "KubelineError",
    "KubelineProtocolError",
    "KubelineTimeoutError",
    "MethodNotAllowedError",
    "NotFoundError",
    "OutputWindow",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitedError",
    "RateLimits",
    "ResultStatus",
    "ResultWindow",
    "Scope",
    "ServiceUnavailableError",
    "SessionClosed",
    "SessionCreated",
    "SessionInfo",
    "SessionList",
    "SessionStatus",
    "SessionSummary",
    "Truncation",
    "UnauthorizedError",
    "UnsupportedMediaTypeError",
    "__version__",
]
