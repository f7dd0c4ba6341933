"""A scripted local HTTP server for the unit tests of the client's HTTP behaviour (retries,
backoff, error mapping, connection failures). It is not a kubeline broker: each test says what
it answers. The live tests talk to the real broker."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional, Union


@dataclass
class Reply:
    status: int = 200
    body: Union[dict, list, str, bytes, None] = None
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False
    """Drop the connection after reading the request, without answering."""
    hang: float = 0.0
    """Wait this long before answering."""


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Optional[Any]
    at: float


class FakeBroker:
    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.default = Reply(200, {})
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                with owner._lock:
                    owner.seen.append(
                        Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
                    )
                    reply = owner.replies.pop(0) if owner.replies else owner.default
                if reply.hang:
                    time.sleep(reply.hang)
                if reply.close:
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                if isinstance(reply.body, (dict, list)):
                    data = json.dumps(reply.body).encode()
                    ctype = "application/json"
                elif isinstance(reply.body, str):
                    data = reply.body.encode()
                    ctype = "text/html"
                else:
                    data = reply.body or b""
                    ctype = "application/octet-stream"
                self.send_response(reply.status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _handle

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a connection the test dropped on purpose

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, *replies: Reply) -> "FakeBroker":
        self.replies.extend(replies)
        return self

    def __enter__(self) -> "FakeBroker":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class SilentServer:
    """Accepts connections and never answers (for client-side timeouts)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.conns: list[socket.socket] = []
        self._stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
                self.conns.append(conn)
            except OSError:
                continue

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "SilentServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self.thread.join()
        for c in self.conns:
            c.close()
        self.sock.close()


def error(status: int, code: str, message: str, details: Optional[dict] = None, headers: Optional[dict] = None) -> Reply:
    body: dict[str, Any] = {"error": code, "message": message}
    if details is not None:
        body["details"] = details
    return Reply(status, body, headers or {})


CLUSTERS = {"clusters": [{"cluster_id": "c1", "name": "c1", "status": "connected", "agent_version": "0.1.0", "last_seen": None}]}


def result(output: str = "out\n", **extra: Any) -> dict[str, Any]:
    body = {
        "result_id": "res_1",
        "session_id": "sess_1",
        "cluster_id": "c1",
        "status": "completed",
        "output": output,
        "error": None,
        "exit_code": 0,
        "execution_time_ms": 3,
        "executed_at": "2026-01-01T00:00:00Z",
        "correlation_id": "corr_1",
    }
    body.update(extra)
    return body
