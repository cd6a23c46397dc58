"""Personal data never reaches the logs: a server with access logs on runs a citizen's whole journey (identity,
photo, certificates, filing with a form, delivery address, appointment, payment, rating, refusals), then its log is
searched for every piece of that citizen's data."""
from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageDraw

ID, NAME = "340302195803172018", "张明华"
PHONE, DETAIL, CARD = "13905529999", "东海大道1号3栋2单元501室", "6222021234567890123"


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def test_a_whole_journey_leaves_no_personal_data_in_the_log(tmp_path: Path, start_server: Callable[..., Any],
                                                            make_session_body: Callable[..., dict],
                                                            kiosk_auth: httpx.Auth) -> None:
    log = tmp_path / "server.log"
    server = start_server(f"sqlite:///{tmp_path / 'p.db'}", stderr_path=log)
    try:
        with httpx.Client(base_url=server.url, timeout=10, auth=kiosk_auth) as k:
            k.post("/api/v1/registered-photos/query", json={"id_number": ID, "name": NAME,
                                                            "document_kind": "resident_id"})
            k.post("/api/v1/registered-photos/query", json={"id_number": ID[:-1] + "9", "name": NAME,
                                                            "document_kind": "resident_id"})
            k.post("/api/v1/citizen-sessions", json=make_session_body(ID[:-1] + "9", NAME))  # refused: check digit
            token = k.post("/api/v1/citizen-sessions", json=make_session_body(ID, NAME)).json()["token"]
            auth = {"Authorization": f"Bearer {token}"}
            certs = k.get("/api/v1/me/e-certificates", headers=auth).json()["items"]
            k.get(certs[0]["pdf_url"], headers=auth)
            k.get("/api/v1/me/photo", headers=auth)
            k.get("/api/v1/me/services/hpf-withdrawal/prefill", headers=auth)
            form = {"reason": "purchase", "bank_card_no": CARD, "bank_name": "工商银行", "phone": PHONE}
            k.post("/api/v1/me/applications/pre-review", headers=auth,
                   json={"service_code": "hpf-withdrawal", "form": {**form, "phone": PHONE + "0"}})
            buf = io.BytesIO()
            img = Image.new("RGB", (1200, 800), "white")
            ImageDraw.Draw(img).rectangle((100, 100, 1100, 400), fill="black")  # a bank card on a white desk
            img.save(buf, format="JPEG")
            page = k.post("/api/v1/me/uploads", content=buf.getvalue(),
                          headers={**auth, **key(), "Content-Type": "image/jpeg"}).json()["id"]
            filed = k.post("/api/v1/me/applications", headers={**auth, **key()}, json={
                "service_code": "hpf-withdrawal", "form": form, "commitment": True,
                "materials": [{"index": 1, "upload_ids": [page]}, {"index": 2, "defer": True}]})
            assert filed.status_code == 201, filed.text
            k.post("/api/v1/me/deliveries", headers={**auth, **key()}, json={
                "application_number": "SP20261029000103",
                "address": {"recipient_name": NAME, "phone": PHONE, "province": "安徽省", "city": "蚌埠市",
                            "district": "龙子湖区", "detail": DETAIL},
                "consent": {"agreed": True, "version": "ems-consent-2026-01"}})
            k.post("/api/v1/me/deliveries", headers={**auth, **key()}, json={  # refused: bad phone
                "application_number": "SP20261029000103", "consent": {"agreed": True, "version": "x"},
                "address": {"recipient_name": NAME, "phone": "0" + PHONE, "province": "安徽省", "city": "蚌埠市",
                            "district": "龙子湖区", "detail": DETAIL}})
            k.post("/api/v1/queue-tickets", headers={**auth, **key()},
                   json={"hall_code": "hpf-hall", "service_code": "hpf-withdrawal"})
            k.post("/api/v1/ratings", headers={**auth, **key()}, json={
                "target_type": "application", "target_id": filed.json()["number"], "stars": 1,
                "comment": f"{NAME}的电话{PHONE}"})
            k.get("/api/v1/me/applications", headers=auth)
            k.delete("/api/v1/citizen-sessions/current", headers=auth)
    finally:
        assert server.stop() == 0
    text = log.read_text(encoding="utf-8")
    assert "POST /api/v1/me/applications HTTP/1.1\" 201" in text and "/pdf HTTP/1.1\" 200" in text  # it did log
    for secret in (ID, ID[:-1] + "9", ID[6:14], NAME, PHONE, PHONE[-8:], DETAIL, CARD, token):
        assert secret not in text, secret
