"""Progress of an application by number without a card: the state only by number alone; with the last 4 of the
applicant's ID number, the full progress with the applicant masked (more in test_money_security.py)."""
from __future__ import annotations

import datetime as dt

import httpx


def test_public_progress_never_shows_the_name_or_id_number(public: httpx.Client,
                                                            seeded_application: tuple[str, str, str]) -> None:
    id_number, name, number = seeded_application
    r = public.post(f"/api/v1/applications/{number}/lookup", json={"id_last4": id_number[-4:]})
    assert r.status_code == 200, r.text
    body = r.text
    assert name not in body
    assert id_number not in body and id_number[-6:] not in body and id_number[:6] + id_number[6:14] not in body
    data = r.json()
    assert data["number"] == number
    assert data["applicant_masked"] == name[0] + "*" + name[-1]
    assert data["timeline"] and data["timeline"][-1]["status"] == data["status"]
    ats = [dt.datetime.fromisoformat(e["at"]) for e in data["timeline"]]
    assert ats == sorted(ats) and ats[0] == dt.datetime.fromisoformat(data["submitted_at"])
    assert data["submitted_at"].endswith("+08:00")
    assert number[2:10] == data["submitted_at"][:10].replace("-", "")
    assert data["service_name"] and data["status_text_zh"] and data["department"]
    assert dt.date.fromisoformat(data["promised_date"]) >= ats[0].date()


def lookup(public: httpx.Client, number: str, id_last4: str) -> dict:
    r = public.post(f"/api/v1/applications/{number}/lookup", json={"id_last4": id_last4})
    assert r.status_code == 200, r.text
    return r.json()


def test_progress_example(public: httpx.Client) -> None:
    assert public.get("/api/v1/applications/SP20261027000102").json() == {
        "number": "SP20261027000102", "status": "in_review", "status_text_zh": "审查中",
        "status_text_en": "In review", "updated_at": "2026-10-28T09:15:00+08:00"}
    data = lookup(public, "SP20261027000102", "2018")
    assert data["service_code"] == "hpf-withdrawal" and data["service_name"] == "住房公积金提取"
    assert data["status"] == "in_review" and data["status_text_zh"] == "审查中"
    assert data["applicant_masked"] == "张*华"
    assert [e["status"] for e in data["timeline"]] == ["received", "accepted", "in_review"]
    assert data["timeline"][0]["at"] == "2026-10-27T10:12:00+08:00"
    assert data["promised_date"] == "2026-10-28"  # 1 working day


def test_supplement_required_status(public: httpx.Client) -> None:
    data = lookup(public, "SP20261026000501", "1518")
    assert data["status"] == "supplement_required" and data["status_text_zh"] == "待补正材料"
    assert "补正" in data["timeline"][-1]["note"]


def test_unknown_application_is_404(public: httpx.Client) -> None:
    for number in ("SP20261027999999", "nonsense"):
        r = public.get(f"/api/v1/applications/{number}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
