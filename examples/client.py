#!/usr/bin/env python3
"""A small kubeline client for AI agents and scripts, using only the Python standard library.

    KUBELINE_URL=http://127.0.0.1:8080 KUBELINE_API_KEY=... KUBELINE_CLUSTER=... \
        python3 examples/client.py get pods -A

Non-2xx answers raise KubelineError with the contract's error body (error, message, details).
"""
import json
import os
import sys
import urllib.error
import urllib.request


class KubelineError(Exception):
    def __init__(self, status, body):
        super().__init__(f"{status} {body.get('error')}: {body.get('message')}")
        self.status, self.body = status, body


class Client:
    def __init__(self, url, api_key, correlation_id=None):
        self.url, self.api_key, self.correlation_id = url.rstrip("/"), api_key, correlation_id

    def _call(self, method, path, body=None):
        req = urllib.request.Request(self.url + path, method=method)
        req.add_header("Authorization", f"Bearer {self.api_key}")
        if self.correlation_id:
            req.add_header("X-Correlation-ID", self.correlation_id)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, data) as res:
                return json.load(res)
        except urllib.error.HTTPError as e:
            raise KubelineError(e.code, json.load(e)) from None

    def session(self, cluster_id):
        return Session(self, self._call("POST", "/debug/session", {"cluster_id": cluster_id}))


class Session:
    def __init__(self, client, info):
        self.client, self.id, self.cluster_id = client, info["session_id"], info["cluster_id"]

    def execute(self, command_type, args, timeout=30):
        return self.client._call("POST", "/debug/execute", {
            "cluster_id": self.cluster_id, "session_id": self.id,
            "command_type": command_type, "args": args, "timeout": timeout,
        })

    def close(self):
        return self.client._call("DELETE", f"/debug/session/{self.id}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def main(argv):
    if not argv:
        sys.exit("usage: client.py COMMAND_TYPE [ARGS...]   e.g. client.py get pods -A")
    client = Client(os.environ.get("KUBELINE_URL", "http://127.0.0.1:8080"),
                    os.environ["KUBELINE_API_KEY"], correlation_id="client.py")
    with client.session(os.environ["KUBELINE_CLUSTER"]) as session:
        result = session.execute(argv[0], argv[1:])
        sys.stdout.write(result["output"])
        if result["error"]:
            sys.stderr.write(result["error"] + "\n")
        return result["exit_code"] or 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KubelineError as e:
        sys.exit(f"kubeline: {e}")
