"""The control endpoint every simulator offers: one JSON command per line in, one JSON line out.

A simulator registers handlers by command name; ``{"cmd": "place_card", "identity": "zhang"}`` calls
``handlers["place_card"](identity="zhang")`` and answers ``{"ok": true, ...result}`` or
``{"ok": false, "error": "..."}``. ``{"cmd": "help"}`` lists the commands. Loopback only.
"""
from __future__ import annotations

import json
import socket
import socketserver
import threading
from typing import Any, Callable, Mapping

Handler = Callable[..., Mapping[str, Any] | None]


class ControlServer:
    """A threaded line-oriented JSON server on ``host:port`` (port 0 picks a free one)."""

    def __init__(self, handlers: Mapping[str, Handler], host: str = "127.0.0.1", port: int = 0) -> None:
        self.handlers = dict(handlers)
        outer = self

        class _Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                for raw in self.rfile:
                    line = raw.strip()
                    if not line:
                        continue
                    reply = outer.dispatch(line)
                    self.wfile.write(json.dumps(reply, ensure_ascii=False).encode() + b"\n")
                    self.wfile.flush()

        class _Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self._server = _Server((host, port), _Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="sim-control", daemon=True)

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def dispatch(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or "cmd" not in request:
                raise ValueError('expected a JSON object with "cmd"')
        except ValueError as exc:
            return {"ok": False, "error": f"bad request: {exc}"}
        cmd = request.pop("cmd")
        if cmd == "help":
            return {"ok": True, "commands": sorted(self.handlers)}
        handler = self.handlers.get(cmd)
        if handler is None:
            return {"ok": False, "error": f"unknown command {cmd!r}", "commands": sorted(self.handlers)}
        try:
            result = handler(**request) or {}
        except Exception as exc:  # a bad control command must never kill the simulator
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        return {"ok": True, **result}

    def start(self) -> "ControlServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def send_command(address: str, cmd: str, timeout: float = 5.0, **args: Any) -> dict[str, Any]:
    """Send one command to a simulator's control endpoint and return its JSON answer."""
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(json.dumps({"cmd": cmd, **args}, ensure_ascii=False).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf)
