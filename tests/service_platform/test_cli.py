"""The command line: serve announces itself once listening and stops cleanly on SIGTERM; seed is repeatable."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from collections.abc import Callable
from typing import Any

import httpx


def test_serve_with_a_file_path_announces_and_stops_on_sigterm(tmp_path: Path,
                                                              start_server: Callable[..., Any]) -> None:
    server = start_server(tmp_path / "plain-path.db", "--session-minutes", "5", "--no-access-log")
    try:
        assert server.pid == server.proc.pid
        assert server.url.startswith("http://127.0.0.1:") and not server.url.endswith(":0")
        assert set(server.announcement) == {"url", "pid"}
        assert httpx.get(f"{server.url}/healthz", timeout=5).json()["status"] == "ok"  # listening already
    finally:
        code = server.stop(timeout=10)
    assert code == 0
    assert (tmp_path / "plain-path.db").exists()


def test_seed_command_is_idempotent(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    cmd = [sys.executable, "-m", "service_platform.cli", "seed", "--db", db, "--demo"]
    first = json.loads(subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout)
    assert first["seeded"] is True and first["services"] >= 32 and first["applications"] == 11
    assert first["e_certificates"] == 23 and first["halls"] == 9 and first["filing_rules"] >= 6
    second = json.loads(subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout)
    assert second["seeded"] is False


def test_serve_takes_a_photo_map(tmp_path: Path, start_server: Callable[..., Any], kiosk_auth: httpx.Auth) -> None:
    from PIL import Image

    face = tmp_path / "chen.jpg"
    Image.new("RGB", (358, 441), "orange").save(face, format="JPEG")
    photo_map = tmp_path / "photos.yaml"
    photo_map.write_text('identities:\n  "520302199002144027": chen.jpg\n', encoding="utf-8")
    server = start_server(tmp_path / "p.db", "--photos", str(photo_map), "--no-access-log")
    try:
        r = httpx.post(f"{server.url}/api/v1/registered-photos/query", timeout=5, auth=kiosk_auth,
                       json={"id_number": "520302199002144027", "name": "陈静怡", "document_kind": "resident_id"})
        assert r.status_code == 200 and r.content == face.read_bytes() and r.headers["x-photo-source"] == "file"
    finally:
        assert server.stop() == 0
