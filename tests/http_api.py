"""A small REST client for tests that drive a running server over HTTP, as a script
user would: token auth, JSON bodies, multipart file uploads. The standard library only,
so it needs nothing the app does not install."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str

    def json(self):
        return json.loads(self.body) if self.body else None


class ApiClient:
    def __init__(self, base: str, token: str | None = None, timeout: float = 120):
        self.base = base.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body=None,
        files: list[tuple[str, str, bytes]] | None = None,
        fields: dict[str, str] | None = None,
    ) -> Reply:
        """`files` are (field, filename, bytes); a 4xx or 5xx is returned, not raised."""
        url = path if path.startswith("http") else self.base + path
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        data = None
        if files is not None:
            boundary = uuid.uuid4().hex
            data = _multipart(boundary, fields or {}, files)
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        elif json_body is not None:
            data = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return Reply(
                    response.status, response.read(), response.headers.get("Content-Type", "")
                )
        except urllib.error.HTTPError as error:
            return Reply(error.code, error.read(), error.headers.get("Content-Type", ""))

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def post(self, path: str, json_body=None, **kwargs) -> Reply:
        return self.request("POST", path, json_body=json_body, **kwargs)


def _multipart(boundary: str, fields: dict[str, str], files: list[tuple[str, str, bytes]]):
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            f"{value}\r\n".encode()
        )
    for name, filename, content in files:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
            + content
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts)
