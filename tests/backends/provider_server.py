"""Test code: loopback servers that behave like API providers a new user points MUSIC at.

``ProviderServer(mode="chat_only")`` answers ``/v1/chat/completions`` and returns the
provider's 404 "This is a chat model and not supported in the v1/completions endpoint" for
``/v1/completions`` (what OpenAI does for gpt-4o-mini); ``mode="completions_only"`` serves
``/v1/completions`` and 404s chat (a base model behind a completions-only server). Options
reproduce day-one failures: ``api_key`` (401 for any other bearer token, echoing it the way
some providers do), ``reject_max_tokens`` (400 asking for ``max_completion_tokens``),
``fail_after`` (401 after that many successful answers: a key revoked mid-run), unknown
models (404 "does not exist"). Answers are deterministic in (content, seed) and pass
MUSIC's validation. Every POST is logged with its path, body and status.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHAT_ONLY_404 = (
    "This is a chat model and not supported in the v1/completions endpoint. "
    "Did you mean to use v1/chat/completions?"
)
MAX_TOKENS_400 = (
    "Unsupported parameter: 'max_tokens' is not supported with this model. "
    "Use 'max_completion_tokens' instead."
)


@dataclass
class Logged:
    path: str
    body: dict[str, Any]
    status: int


class ProviderServer:
    """See the module docstring. Call ``stop()`` (the fixture does)."""

    def __init__(
        self,
        mode: str = "chat_only",
        *,
        models: tuple[str, ...] = ("gpt-test",),
        api_key: str | None = None,
        reject_max_tokens: bool = False,
        fail_after: int | None = None,
    ) -> None:
        self.mode = mode
        self.models = models
        self.api_key = api_key
        self.reject_max_tokens = reject_max_tokens
        self.fail_after = fail_after
        self.log: list[Logged] = []
        self.successes = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                data = [{"id": m, "object": "model"} for m in server.models]
                self._send(200, {"object": "list", "data": data})

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                status, payload = server.answer(
                    self.path, body, self.headers.get("authorization", "")
                )
                with server._lock:
                    server.log.append(Logged(self.path, body, status))
                self._send(status, payload)

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                blob = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(blob)))
                self.end_headers()
                self.wfile.write(blob)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that hangs up (a cancelled request) is no test failure

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def paths(self) -> list[str]:
        with self._lock:
            return [entry.path for entry in self.log]

    def statuses(self) -> list[int]:
        with self._lock:
            return [entry.status for entry in self.log]

    # -- behaviour ------------------------------------------------------------------------
    def answer(self, path: str, body: dict[str, Any], auth: str) -> tuple[int, dict[str, Any]]:
        chat = path.endswith("/chat/completions")
        if self.api_key is not None and auth != f"Bearer {self.api_key}":
            given = auth.removeprefix("Bearer ")
            return 401, _error(f"Incorrect API key provided: {given}.", "invalid_api_key")
        with self._lock:
            revoked = self.fail_after is not None and self.successes >= self.fail_after
        if revoked:
            return 401, _error("Your API key has been revoked.", "invalid_api_key")
        if self.mode == "chat_only" and not chat:
            return 404, _error(CHAT_ONLY_404, None)
        if self.mode == "completions_only" and chat:
            return 404, _error("Not Found", None)
        if body.get("model") not in self.models:
            message = f"The model `{body.get('model')}` does not exist or you do not have access."
            return 404, _error(message, "model_not_found")
        if self.reject_max_tokens and "max_tokens" in body:
            return 400, _error(MAX_TOKENS_400, "unsupported_parameter")
        with self._lock:
            self.successes += 1
        content = json.dumps(body.get("messages") if chat else body.get("prompt"))
        digest = hashlib.sha256(f"{content}|{body.get('seed')}".encode()).hexdigest()
        text = f"Could you explain topic {digest[:8]} from angle {digest[8:14]} instead?"
        usage = {"prompt_tokens": len(content) // 4, "completion_tokens": len(text) // 4}
        if chat:
            choice: dict[str, Any] = {"message": {"role": "assistant", "content": text}}
        else:
            choice = {"text": text}
        choice.update(index=0, finish_reason="stop")
        return 200, {"id": digest[:12], "object": "x", "model": body.get("model"),
                     "choices": [choice], "usage": usage}  # fmt: skip


def _error(message: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "code": code}}
