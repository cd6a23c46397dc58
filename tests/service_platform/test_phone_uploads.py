"""Phone upload (手机上传) against the real server: the kiosk makes a one-time link bound to the citizen session, an
HTTP client playing the phone posts photos through the public page, the kiosk sees them; attacks: another session,
a card-only session, oversized and too many photos, other file types, a link after the session ended or closed, an
unknown link. Expiry by time runs in-process with a settable clock."""
from __future__ import annotations

import datetime as dt
import io
import time
import uuid
import warnings
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from PIL import Image

CHEN, WANG = "520302199002144027", "230202197511053015"
LINKS = "/api/v1/me/phone-uploads"


def idem() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def photo(seed: int, size: tuple[int, int] = (1200, 900)) -> bytes:
    img = Image.new("RGB", size, (240, 240, 235))
    for i in range(0, size[0], 40):  # some "text" lines so that it is not blank
        img.paste((20 + seed, 20, 20), (i, 100 + (i * 7 + seed) % 600, i + 25, 110 + (i * 7 + seed) % 600))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=80)
    return out.getvalue()


def phone_post(phone: httpx.Client, url: str, files: list[tuple[str, bytes, str]]) -> httpx.Response:
    return phone.post(url, files=[("photos", f) for f in files])


def new_link(kiosk: httpx.Client, auth: dict[str, str]) -> dict[str, Any]:
    r = kiosk.post(LINKS, headers={**auth, **idem()}, json={"purpose": "supplement"})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
def phone(platform: Any) -> Any:
    with httpx.Client(timeout=30) as client:
        yield client


def test_photos_from_the_phone_appear_in_the_kiosk_session(kiosk: httpx.Client, phone: httpx.Client,
                                                           platform: Any,
                                                           open_session: Callable[[str], dict[str, str]]) -> None:
    auth = open_session(CHEN)
    link = new_link(kiosk, auth)
    assert link["status"] == "open" and link["files"] == [] and link["max_files"] == 10
    url = link["upload_url"]
    assert url.startswith(platform.url + "/upload/")                    # the PUBLIC base (= listening URL here)
    page = phone.get(url)
    assert page.status_code == 200 and 'type="file"' in page.text and 'capture="environment"' in page.text
    pictures = [photo(1), photo(2)]
    r = phone_post(phone, url, [("p1.jpg", pictures[0], "image/jpeg"), ("p2.jpg", pictures[1], "image/jpeg")])
    assert r.status_code == 200 and 'data-status="received"' in r.text
    polled = kiosk.get(f"{LINKS}/{link['id']}", headers=auth).json()
    assert polled["upload_url"] is None and len(polled["files"]) == 2
    first = polled["files"][0]
    assert (first["width"], first["height"], first["content_type"], first["blank"]) == (1200, 900, "image/jpeg",
                                                                                       False)
    got = kiosk.get(f"{LINKS}/{link['id']}/files/{first['upload_id']}", headers=auth)
    assert got.status_code == 200 and got.content == pictures[0]
    # another session — of the same citizen at the same kiosk — does not see them
    other = open_session(CHEN)
    for path in (f"{LINKS}/{link['id']}", f"{LINKS}/{link['id']}/files/{first['upload_id']}"):
        r = kiosk.get(path, headers=other)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", path
    assert kiosk.delete(f"{LINKS}/{link['id']}", headers=other).status_code == 404
    assert kiosk.get(f"{LINKS}/{link['id']}").status_code == 401                  # no citizen token
    assert phone.get(platform.url + f"{LINKS}/{link['id']}", headers=auth).status_code == 401  # no kiosk signature
    # the session ends: the link is dead, the photos are gone
    assert kiosk.delete("/api/v1/citizen-sessions/current", headers=auth).status_code == 204
    ids = [f["upload_id"] for f in polled["files"]]
    assert platform.query("SELECT count(*) FROM uploads WHERE id IN (:a, :b)", a=ids[0], b=ids[1]) == [(0,)]
    late = phone_post(phone, url, [("p3.jpg", photo(3), "image/jpeg")])
    assert late.status_code == 410 and 'data-status="closed"' in late.text        # closed with the session
    assert phone.get(url).status_code == 410


def test_bounds_and_bad_files(kiosk: httpx.Client, phone: httpx.Client, platform: Any,
                              open_session: Callable[[str], dict[str, str]]) -> None:
    auth = open_session(WANG)
    link = new_link(kiosk, auth)
    url = link["upload_url"]
    big = b"\xff\xd8\xff" + b"\0" * (8 * 1024 * 1024)                              # 8 MB + 3 bytes
    r = phone_post(phone, url, [("big.jpg", big, "image/jpeg")])
    assert r.status_code == 413 and 'data-status="too_large"' in r.text
    r = phone_post(phone, url, [("x.gif", b"GIF89a" + b"\0" * 100, "image/gif")])
    assert r.status_code == 415
    r = phone_post(phone, url, [("fake.jpg", b"\xff\xd8\xff\xe0 not really a jpeg", "image/jpeg")])
    assert r.status_code == 422 and 'data-status="invalid"' in r.text
    r = phone.post(url, content=photo(4), headers={"Content-Type": "image/jpeg"})   # not the form
    assert r.status_code == 415
    small = photo(5, (400, 300))
    r = phone_post(phone, url, [(f"{i}.jpg", small, "image/jpeg") for i in range(11)])
    assert r.status_code == 413 and 'data-status="too_many"' in r.text
    assert kiosk.get(f"{LINKS}/{link['id']}", headers=auth).json()["files"] == []   # nothing kept of the refusals
    r = phone_post(phone, url, [(f"{i}.jpg", small, "image/jpeg") for i in range(10)])
    assert r.status_code == 200
    r = phone_post(phone, url, [("one-more.jpg", small, "image/jpeg")])
    assert r.status_code == 413
    assert len(kiosk.get(f"{LINKS}/{link['id']}", headers=auth).json()["files"]) == 10
    # closed at the kiosk: photos gone, link dead
    assert kiosk.delete(f"{LINKS}/{link['id']}", headers=auth).status_code == 204
    polled = kiosk.get(f"{LINKS}/{link['id']}", headers=auth).json()
    assert polled["status"] == "closed" and polled["files"] == []
    assert phone.get(url).status_code == 410
    assert phone.get(url + "x").status_code == 404                                  # unknown link
    secret = url.rsplit("/", 1)[1]
    assert platform.log_path is not None
    deadline = time.monotonic() + 10
    while "/upload/<secret>" not in platform.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)  # the access line is written after the answer: poll with a deadline
    log = platform.log_path.read_text()
    assert "/upload/<secret>" in log and secret not in log                         # never in the access log


def test_a_card_only_session_gets_no_link(kiosk: httpx.Client,
                                          make_session_body: Callable[..., dict[str, Any]]) -> None:
    card = kiosk.post("/api/v1/citizen-sessions", json=make_session_body(CHEN, "陈静怡", method="card",
                                                                        face_match=None))
    auth = {"Authorization": f"Bearer {card.json()['token']}"}
    r = kiosk.post(LINKS, headers={**auth, **idem()}, json={})
    assert r.status_code == 403 and r.json()["error"]["code"] == "verification_level_insufficient"


def login(client: Any) -> dict[str, str]:
    r = client.post("/api/v1/citizen-sessions", json={
        "id_number": CHEN, "name": "陈静怡", "document_kind": "resident_id",
        "verification": {"method": "card+face", "face_match": True}})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_links_expire_after_ten_minutes(new_db_url: Callable[[str], str], clock_factory: Any,
                                        kiosk_key_pair: Any, kiosk_auth: Any) -> None:
    """In-process with a settable clock, on SQLite (the real-server tests above run on both backends)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from service_platform.app import create_app
    from service_platform.retention import sweep_app

    clock = clock_factory(dt.datetime(2026, 11, 3, 2, 0, tzinfo=dt.timezone.utc))  # Tuesday 10:00 in China
    app = create_app(new_db_url("sqlite"), clock=clock, demo=True,
                     demo_kiosk_public_key=kiosk_key_pair.public_key_file.read_bytes(),
                     public_base_url="https://zw.example.cn")
    with TestClient(app) as client:
        client.auth = kiosk_auth
        auth = login(client)
        link = client.post(LINKS, headers={**auth, **idem()}, json={}).json()
        assert link["upload_url"].startswith("https://zw.example.cn/upload/")      # the configured public base
        path = link["upload_url"].removeprefix("https://zw.example.cn")
        assert client.post(path, files=[("photos", ("a.jpg", photo(6), "image/jpeg"))]).status_code == 200
        clock.advance(minutes=10, seconds=1)
        assert client.get(path).status_code == 410
        assert client.post(path, files=[("photos", ("b.jpg", photo(7), "image/jpeg"))]).status_code == 410
        clock.advance(hours=1, minutes=1)
        swept = sweep_app(app)
        assert swept["phone_upload_links"] == 1 and swept["phone_upload_photos"] == 1
        assert client.get(path).status_code == 404
        config = client.get("/api/v1/kiosk/config").json()
        assert config["verify_urls"]["document"] == "https://zw.example.cn/verify/d/{code}"
        # a queue ticket's page
        ticket = client.post("/api/v1/queue-tickets", headers=idem(),
                             json={"hall_code": "lzh-hall", "service_code": "social-security-card-apply"})
        assert ticket.status_code == 201, ticket.text
        seen = client.get(f"/api/v1/verify/queue-tickets/{ticket.json()['id']}").json()
        assert (seen["ticket_no"], seen["status"]) == (ticket.json()["ticket_no"], "waiting")
        assert 'data-status="waiting"' in client.get(f"/verify/t/{ticket.json()['id']}").text
        # an appointment slip's page
        book = client.post("/api/v1/me/appointments", headers={**login(client), **idem()},
                           json={"hall_code": "dongfeng-street", "service_code": "senior-card",
                                 "date": "2026-11-04", "start": "09:00"})
        assert book.status_code == 201, book.text
        no = book.json()["appointment_no"]
        slip = client.get(f"/api/v1/verify/appointments/{no}").json()
        assert (slip["day"], slip["start"], slip["status"]) == ("2026-11-04", "09:00", "booked")
        assert 'data-status="booked"' in client.get(f"/verify/m/{no}").text
        # a complaint's reference (routes/feedback.py) has its verify page too
        fb = client.post("/api/v1/feedback", headers=idem(), json={"kind": "complaint", "text": "排队太久"})
        assert fb.status_code == 201, fb.text
        page = client.get(f"/verify/f/{fb.json()['reference']}")
        assert page.status_code == 200 and "排队太久" not in page.text
        # the verify pages and phone links share a miss throttle per address (the unknown link above was one)
        for _ in range(19):
            assert client.get("/api/v1/verify/documents/AAAA-BBBB-CCCC-DDDD").status_code == 404
        r = client.get("/api/v1/verify/applications/SP20261027000102")
        assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_attempts" and r.headers["Retry-After"]
        assert client.get("/verify/d/AAAA-BBBB-CCCC-DDDD").status_code == 429
        clock.advance(minutes=11)
        assert client.get("/api/v1/verify/applications/SP20261027000102").status_code == 200
