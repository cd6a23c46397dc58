"""EMS delivery (证照寄送) against the real server: explicit consent, masked answers, one per application, tracking."""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from service_platform.numbering import is_valid_s10

LI, CHEN = "35010219490822102X", "520302199002144027"
ADDRESS = {"recipient_name": "李秀英", "phone": "13905520088", "province": "安徽省", "city": "蚌埠市",
           "district": "龙子湖区", "detail": "东风街道光彩路18号2栋101室", "postcode": "233000"}


def consent(client: httpx.Client) -> dict[str, Any]:
    return {"agreed": True, "version": client.get("/api/v1/delivery-consent").json()["version"]}


def test_consent_text_is_public(public: httpx.Client) -> None:
    data = public.get("/api/v1/delivery-consent").json()
    assert data["version"] and "EMS" in data["text"] and "同意" in data["text"] and data["text_en"]


@pytest.mark.parametrize("given, code", [
    ({"agreed": False, "version": "ems-consent-2026-01"}, "consent_required"),
    ({"agreed": True, "version": "ems-consent-2020-01"}, "consent_outdated"),
])
def test_no_delivery_without_explicit_consent(kiosk: httpx.Client, open_session: Callable[[str], dict[str, str]],
                                             idem: Callable[[], dict[str, str]], given: dict, code: str) -> None:
    r = kiosk.post("/api/v1/me/deliveries", headers={**open_session(LI), **idem()},
                   json={"application_number": "SP20261013000201", "address": ADDRESS, "consent": given})
    assert r.status_code == 422 and r.json()["error"]["code"] == code


def test_request_a_delivery(kiosk: httpx.Client, platform: Any, open_session: Callable[[str], dict[str, str]],
                            open_synthetic: Callable[..., tuple[str, dict[str, str]]],
                            idem: Callable[[], dict[str, str]]) -> None:
    auth = open_session(LI)
    body = {"application_number": "SP20261013000201", "address": ADDRESS, "consent": consent(kiosk)}
    existing = platform.query("SELECT d.delivery_no FROM deliveries d JOIN applications a ON a.id = d.application_id "
                              "WHERE a.number = 'SP20261013000201'")
    if not existing:
        key = idem()
        r = kiosk.post("/api/v1/me/deliveries", headers={**auth, **key}, json=body)
        assert r.status_code == 201, r.text
        data = r.json()
        assert kiosk.post("/api/v1/me/deliveries", headers={**auth, **key}, json=body).json() == data
        assert data["delivery_no"].startswith("DL") and data["carrier"] == "EMS" and is_valid_s10(data["waybill_no"])
        assert data["recipient_masked"] == "李*英" and data["phone_masked"] == "139****0088"
        assert data["address_masked"] == "安徽省蚌埠市龙子湖区东风街道****"
        text = json.dumps(data, ensure_ascii=False)
        assert "李秀英" not in text and "13905520088" not in text and "光彩路18号" not in text
        # decided already: posted two hours after the request (the simulated carrier; see test_clocked.py)
        assert data["status"] == "awaiting_item" and data["tracking"][0]["note"] == "已登记寄送信息，等待交寄"
        stored = platform.query("SELECT consent_version, phone FROM deliveries WHERE delivery_no = :n",
                                n=data["delivery_no"])
        assert stored == [(body["consent"]["version"], "13905520088")]
        existing = [(data["delivery_no"],)]
    (number,), = existing
    r = kiosk.post("/api/v1/me/deliveries", headers={**auth, **idem()}, json=body)
    assert r.status_code == 409 and r.json()["error"] == {
        "code": "delivery_exists", "message": "a delivery was already requested for this application",
        "details": {"delivery_no": number}}
    assert kiosk.get(f"/api/v1/me/deliveries/{number}", headers=auth).json()["delivery_no"] == number
    assert number in [d["delivery_no"] for d in kiosk.get("/api/v1/me/deliveries", headers=auth).json()["items"]]
    _id, stranger = open_synthetic(930)
    assert kiosk.get(f"/api/v1/me/deliveries/{number}", headers=stranger).status_code == 404
    assert kiosk.get("/api/v1/me/deliveries", headers=stranger).json()["items"] == []
    r = kiosk.post("/api/v1/me/deliveries", headers={**stranger, **idem()}, json=body)  # not their application
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_seeded_delivery_was_delivered(kiosk: httpx.Client, open_session: Callable[[str], dict[str, str]]) -> None:
    (delivery,) = kiosk.get("/api/v1/me/deliveries", headers=open_session("340302195803172018")).json()["items"]
    assert delivery["application_number"] == "SP20261012000101" and delivery["status"] == "delivered"
    assert [t["status"] for t in delivery["tracking"]] == ["awaiting_item", "posted", "in_transit",
                                                           "out_for_delivery", "delivered"]
    assert delivery["tracking"][-1]["at"] == "2026-10-14T15:30:00+08:00"  # the application's delivered event


@pytest.mark.parametrize("field, value", [("phone", "02583456789"), ("postcode", "23300"), ("detail", "1号")])
def test_address_is_validated(kiosk: httpx.Client, open_session: Callable[[str], dict[str, str]],
                              idem: Callable[[], dict[str, str]], field: str, value: str) -> None:
    r = kiosk.post("/api/v1/me/deliveries", headers={**open_session(CHEN), **idem()}, json={
        "application_number": "SP20261015000402", "address": {**ADDRESS, field: value}, "consent": consent(kiosk)})
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_failed"
    assert field in r.json()["error"]["message"]
