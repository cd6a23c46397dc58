"""The encrypted outbox against the real platform: journaled before sending, encrypted at rest with a 0600 key,
settled exactly once (submitted / rejected), kept while the platform is unreachable, drained in the background."""
from __future__ import annotations

import os
import socket
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from kiosk.errors import PlatformRejected, PlatformUnavailable
from kiosk.outbox import Outbox, OutboxDrainer, OutboxKeyError, load_key
from kiosk.platform_client import PlatformClient
from kiosk.request_signing import KioskRequestSigner
from kiosk.usecases.apply import register_senders

KIOSK = ("KSK-340302-0001",)


def signer() -> KioskRequestSigner:
    """The demo kiosk's signing key of this test run (tests/conftest.py)."""
    return KioskRequestSigner.from_file("KSK-340302-0001", os.environ["KIOSK_TEST_SIGNING_KEY"])
ZHAO = ("340302194501013033", "赵德顺", "resident_id")
FORM = {"purpose": "employment", "copies": 1}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def client(platform_server):
    c = PlatformClient(platform_server.url, *KIOSK, signer(), timeout_s=10)
    yield c
    c.close()


@pytest.fixture
def unreachable():
    c = PlatformClient(f"http://127.0.0.1:{closed_port()}", *KIOSK, signer(), timeout_s=2, retries=1)
    yield c
    c.close()


@pytest.fixture
def token(client) -> str:
    return client.open_citizen_session(*ZHAO, face_match=True).token


def outbox_for(tmp_path: Path, platform: PlatformClient) -> Outbox:
    box = Outbox(tmp_path / "outbox.sqlite3", tmp_path / "outbox.key")
    register_senders(box, platform)
    return box


def count(platform_server, before: int) -> list[tuple]:
    return platform_server.query("SELECT number FROM applications WHERE id > ? AND applicant_id_number = ?",
                                 before, ZHAO[0])


def max_id(platform_server) -> int:
    return platform_server.query("SELECT coalesce(max(id), 0) FROM applications")[0][0]


def test_key_file_is_private_and_stable(tmp_path: Path) -> None:
    key = load_key(tmp_path / "k" / "outbox.key")
    assert stat.S_IMODE((tmp_path / "k" / "outbox.key").stat().st_mode) == 0o600
    assert load_key(tmp_path / "k" / "outbox.key") == key and len(key) == 32
    os.chmod(tmp_path / "k" / "outbox.key", 0o644)
    with pytest.raises(OutboxKeyError):
        load_key(tmp_path / "k" / "outbox.key")


def test_payload_is_encrypted_at_rest_and_bound_to_its_row(tmp_path: Path, unreachable) -> None:
    box = outbox_for(tmp_path, unreachable)
    a = box.put("application", {"token": "secret-token", "service_code": "hukou-certificate",
                                "form": {"phone": "13905520003", "note": "赵德顺"}, "materials": []})
    b = box.put("rating", {"target_type": "service", "target_id": "x", "stars": 5, "token": ""})
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("outbox.sqlite3*"))
    for secret in (b"13905520003", "赵德顺".encode(), b"secret-token"):
        assert secret not in raw
    assert box.get(a.id, decrypt=True).payload["form"]["phone"] == "13905520003"
    # a payload moved to another row does not decrypt (the row id and kind are authenticated)
    with sqlite3.connect(tmp_path / "outbox.sqlite3") as db:
        blob = db.execute("SELECT payload FROM outbox WHERE id = ?", (a.id,)).fetchone()[0]
        db.execute("UPDATE outbox SET payload = ? WHERE id = ?", (blob, b.id))
    with pytest.raises(Exception):
        box.get(b.id, decrypt=True)
    assert a.reference.startswith("KQ") and a.reference != b.reference


def test_unreachable_keeps_it_then_submits_once(tmp_path: Path, unreachable, client, token,
                                                platform_server) -> None:
    box = outbox_for(tmp_path, unreachable)
    item = box.put("application", {"token": token, "service_code": "hukou-certificate", "form": FORM,
                                   "materials": []})
    with pytest.raises(PlatformUnavailable):
        box.attempt(item.id)
    kept = box.get(item.id, decrypt=True)
    assert (kept.state, kept.attempts, kept.last_error) == ("pending", 1, "platform_unavailable")
    assert box.drain().unreachable and box.pending_count() == 1
    box.close()

    before = max_id(platform_server)
    box = outbox_for(tmp_path, client)  # the platform is back (a new process: the key file is reused)
    report = box.drain()
    assert [i.id for i in report.submitted] == [item.id] and report.remaining == 0
    done = box.get(item.id, decrypt=True)
    assert done.state == "submitted" and done.payload is None and done.attempts == 3
    assert count(platform_server, before) == [(done.result["number"],)]
    assert box.drain().submitted == [] and count(platform_server, before) == [(done.result["number"],)]


def test_rejection_is_final_and_erases_the_payload(tmp_path: Path, client, token) -> None:
    box = outbox_for(tmp_path, client)
    item = box.put("application", {"token": token, "service_code": "hukou-certificate",
                                   "form": {"purpose": "other"}, "materials": []})
    with pytest.raises(PlatformRejected) as refused:
        box.attempt(item.id)
    assert [p.field for p in refused.value.problems] == ["/purpose_note", "/copies"]
    settled = box.get(item.id, decrypt=True)
    assert (settled.state, settled.last_error, settled.payload) == ("rejected", "pre_review_failed", None)
    assert box.drain().submitted == [] and box.pending_count() == 0


def test_ratings_survive_the_end_of_the_citizen_session(tmp_path: Path, client, token, platform_server) -> None:
    box = outbox_for(tmp_path, client)
    item = box.put("rating", {"target_type": "service", "target_id": "hukou-certificate", "stars": 2,
                              "tags": ["等待时间长"], "comment": None, "token": token})
    client.close_citizen_session(token)  # the citizen left before it was sent
    before = platform_server.query("SELECT coalesce(max(id), 0) FROM ratings")[0][0]
    assert box.attempt(item.id).state == "submitted"
    assert platform_server.query("SELECT stars, target_id FROM ratings WHERE id > ?", before) == \
        [(2, "hukou-certificate")]


def test_background_drainer_submits_when_woken(tmp_path: Path, client, token, platform_server, wait_for) -> None:
    box = outbox_for(tmp_path, client)
    reports = []
    settled = threading.Event()
    drainer = OutboxDrainer(box, interval_s=3600, listener=lambda r: (reports.append(r), settled.set()))
    before = max_id(platform_server)
    drainer.start()
    try:
        # the first round (at start) found nothing; the next is an hour away unless woken
        wait_for(lambda: drainer.rounds >= 1, what="the drainer's first round")
        item = box.put("application", {"token": token, "service_code": "hukou-certificate", "form": FORM,
                                       "materials": []})
        assert not settled.wait(0.5), "nothing is drained before the wake"
        drainer.wake()
        assert settled.wait(20), "the drainer did not submit"
    finally:
        drainer.stop()
    assert reports[0].submitted[0].id == item.id
    assert count(platform_server, before) == [(box.get(item.id).result["number"],)]
