"""The platform client against a hostile or broken server (a real tiny HTTP server on a loopback port, started here):
a 2xx answer that is not the JSON expected, or an answer larger than the client's limits, is PlatformUnavailable —
never parsed, never read whole into memory. Also: every request the client sends is signed (KIOSK-ED25519-V1)."""
from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.errors import PlatformUnavailable
from kiosk.platform_client import MAX_JSON_BYTES, MAX_RAW_BYTES, PlatformClient
from kiosk.request_signing import KioskRequestSigner

#: path → (content type, body, declared length or None to send chunked-less with Connection: close)
ANSWERS: dict[str, tuple[str, bytes, bool]] = {
    "/api/v1/categories": ("text/html", b"<html>captive portal</html>", True),
    "/api/v1/rating-tags": ("application/json", b"{\"items\": [", True),
    "/api/v1/halls": ("application/json", b"\xff\xfe not utf-8", True),
    "/api/v1/services/big": ("application/json",
                             b"{\"code\": \"" + b"x" * (MAX_JSON_BYTES + 10) + b"\"}", True),
    "/api/v1/services/big-undeclared": ("application/json",
                                        b"{\"code\": \"" + b"x" * (MAX_JSON_BYTES + 10) + b"\"}", False),
    "/api/v1/me/e-certificates/big/pdf": ("application/pdf", b"%PDF" + b"0" * MAX_RAW_BYTES, False),
    "/api/v1/me/e-certificates/small/pdf": ("application/pdf", b"%PDF-1.7 small", True),
    "/api/v1/services/ok": ("application/json", b"{\"code\": \"ok\", \"name\": \"ok\", \"name_en\": \"ok\"}", True),
}


class Handler(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802
        Handler.seen.append({k: v for k, v in self.headers.items() if k.lower().startswith("x-kiosk-")})
        content_type, body, declared = ANSWERS.get(self.path.split("?")[0], ("application/json", b"{}", True))
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        if declared:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")  # body until the connection closes: no length to trust
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading: what it should do
        if not declared:
            self.close_connection = True

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def client(server: str) -> Iterator[PlatformClient]:
    c = PlatformClient(server, "KSK-340302-0001", KioskRequestSigner("KSK-340302-0001", Ed25519PrivateKey.generate()),
                       timeout_s=10, retries=2)
    try:
        yield c
    finally:
        c.close()


@pytest.mark.parametrize("call", ["categories", "rating_tags", "halls"])
def test_a_2xx_answer_that_is_not_json_is_platform_unavailable(client: PlatformClient, call: str) -> None:
    with pytest.raises(PlatformUnavailable, match="not JSON"):
        getattr(client, call)()


@pytest.mark.parametrize("code", ["big", "big-undeclared"])
def test_a_json_answer_above_the_limit_is_platform_unavailable(client: PlatformClient, code: str) -> None:
    with pytest.raises(PlatformUnavailable, match="larger than"):
        client.service_detail_json(code)


def test_a_pdf_above_the_limit_is_platform_unavailable_and_a_small_one_is_read(client: PlatformClient) -> None:
    with pytest.raises(PlatformUnavailable, match="larger than"):
        client.e_certificate_pdf("token", "big")
    assert client.e_certificate_pdf("token", "small") == b"%PDF-1.7 small"
    assert client.service_detail_json("ok")["code"] == "ok"


def test_every_request_is_signed(client: PlatformClient) -> None:
    Handler.seen.clear()
    client.service_detail_json("ok")
    headers = {k.lower(): v for k, v in Handler.seen[-1].items()}
    assert set(headers) == {"x-kiosk-id", "x-kiosk-key-id", "x-kiosk-timestamp", "x-kiosk-nonce",
                            "x-kiosk-signature"}
    signer = client._http.auth
    assert headers["x-kiosk-key-id"] == hashlib.sha256(signer.public_key).hexdigest()[:16]  # type: ignore[union-attr]
    assert 22 <= len(headers["x-kiosk-nonce"]) <= 64
