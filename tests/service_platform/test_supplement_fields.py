"""补正 of form fields against the real server: a department asks (``service-platform application request-supplement``,
here its function on the server's database) for fields of a filed form to be corrected; the citizen's values are
checked field by field against the service's form schema, applied to the filed form, named on the timeline (never
their values), and the application moves on once nothing is outstanding. The route keeps the supplement route's
caller rules: a kiosk's signature and a citizen session at the strong level, own applications only — attacked here."""
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from service_platform.db import utcnow
from service_platform.supplement_fields import SupplementRequestError, request_supplement

ZHANG, YANG = "340302195803172018", "530102198306301518"
APPS = "/api/v1/me/applications"
FORM = {"business_name": "张记早餐店", "business_address": "蚌埠市龙子湖区东海大道1号3栋2单元501室",
        "business_scope": "早餐", "capital_fen": 5_000_000, "phone": "13905520003"}
NOTE = "经营范围表述不规范；联系电话无法接通，请更正"


def codes(response: httpx.Response) -> list[tuple[str, Any]]:
    problems = response.json()["error"]["details"]["problems"]
    return [(p["code"], p["field"] if p["field"] is not None else p["material_index"]) for p in problems]


def ask(platform: Any, number: str, fields: list[str], materials: tuple[int, ...] = ()) -> None:
    """What the CLI does, on the server's database (either backend)."""
    with Session(platform.engine()) as db:
        request_supplement(db, number, fields=fields, materials=list(materials), note=NOTE, now=utcnow())
        db.commit()


@pytest.fixture
def asked(kiosk: httpx.Client, platform: Any, open_session: Callable[[str], dict[str, str]],
          idem: Callable[[], dict[str, str]]) -> tuple[str, dict[str, str]]:
    """张明华 files a sole-proprietor registration (everything provided); the department then asks him to correct
    the business scope and the phone number."""
    auth = open_session(ZHANG)
    cert = kiosk.get("/api/v1/me/e-certificates", headers=auth, params={"type": "property_cert"}).json()["items"][0]
    filed = kiosk.post(APPS, headers={**auth, **idem()}, json={
        "service_code": "sole-proprietor-registration", "form": FORM,
        "materials": [{"index": 2, "e_certificate_id": cert["id"]}]})
    assert filed.status_code == 201, filed.text
    number = filed.json()["number"]
    ask(platform, number, ["business_scope", "phone"])
    return number, auth


def test_the_department_asks_for_fields_and_the_one_time_list_shows_them(kiosk, asked) -> None:
    number, auth = asked
    detail = kiosk.get(f"{APPS}/{number}", headers=auth).json()
    assert detail["progress"]["status"] == "supplement_required"
    assert detail["progress"]["timeline"][-1]["note"] == NOTE
    assert detail["outstanding"] == []
    assert detail["outstanding_fields"] == [
        {"name": "business_scope", "title": "经营范围", "title_en": "Business scope", "note": NOTE},
        {"name": "phone", "title": detail["outstanding_fields"][1]["title"], "title_en":
         detail["outstanding_fields"][1]["title_en"], "note": NOTE}]
    assert "电话" in detail["outstanding_fields"][1]["title"]


def test_fields_supplied_one_by_one_are_applied_and_the_application_moves_on(kiosk, platform, asked, idem) -> None:
    number, auth = asked
    first = kiosk.post(f"{APPS}/{number}/supplements", headers={**auth, **idem()},
                       json={"fields": {"business_scope": "早餐、小吃、预包装食品销售"}})
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["progress"]["status"] == "supplement_required", "the phone is still outstanding"
    assert [f["name"] for f in body["outstanding_fields"]] == ["phone"]
    assert body["form"]["business_scope"] == "早餐、小吃、预包装食品销售" and body["form"]["phone"] == FORM["phone"]
    assert body["progress"]["timeline"][-1]["note"] == "已补交补正内容：经营范围；尚缺1项"

    key = idem()
    done = kiosk.post(f"{APPS}/{number}/supplements", headers={**auth, **key}, json={"fields": {"phone": "13905529999"}})
    assert done.status_code == 201, done.text
    body = done.json()
    assert body["progress"]["status"] == "in_review" and body["outstanding_fields"] == []
    assert body["form"] == {**FORM, "business_scope": "早餐、小吃、预包装食品销售", "phone": "13905529999"}
    last = body["progress"]["timeline"][-1]
    assert last["status"] == "in_review" and last["note"].startswith("补正已完成（") and "电话" in last["note"]
    assert "13905529999" not in json.dumps(body["progress"], ensure_ascii=False), "values never on the timeline"
    replay = kiosk.post(f"{APPS}/{number}/supplements", headers={**auth, **key}, json={"fields": {"phone": "13905529999"}})
    assert replay.status_code == 201 and replay.json() == done.json(), "same key: the same answer, nothing twice"
    assert platform.query("SELECT count(*) FROM application_events e JOIN applications a ON a.id = e.application_id "
                          "WHERE a.number = :n AND e.status = 'in_review'", n=number) == [(1,)]
    again = kiosk.post(f"{APPS}/{number}/supplements", headers={**auth, **idem()}, json={"fields": {"phone": "13905520003"}})
    assert again.status_code == 409 and again.json()["error"]["code"] == "nothing_outstanding"


def test_materials_and_fields_in_one_supplement(kiosk, platform, asked, idem) -> None:
    number, auth = asked
    ask(platform, number, ["employees"], materials=(2,))        # asked again: the lease and the head count
    lease_cert = kiosk.get("/api/v1/me/e-certificates", headers=auth,
                           params={"type": "property_cert"}).json()["items"][0]["id"]
    r = kiosk.post(f"{APPS}/{number}/supplements", headers={**auth, **idem()}, json={
        "materials": [{"index": 2, "e_certificate_id": lease_cert}],
        "fields": {"business_scope": "早餐、小吃", "phone": "13905529999", "employees": 3}})
    assert r.status_code == 201, r.text
    assert r.json()["progress"]["status"] == "in_review" and r.json()["outstanding"] == []
    assert r.json()["form"]["employees"] == 3
    assert r.json()["progress"]["timeline"][-1]["note"].startswith("补正已完成（经营场所使用证明、")


def test_attacks_on_the_route(kiosk, public, platform, asked, idem, open_session, make_session_body) -> None:
    number, auth = asked
    url = f"{APPS}/{number}/supplements"
    good = {"fields": {"phone": "13905529999"}}
    # another citizen's application is answered exactly like a missing one
    other = kiosk.post(url, headers={**open_session(YANG), **idem()}, json=good)
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"
    # a card-only session (the holder not confirmed by face) may not supplement
    weak = kiosk.post("/api/v1/citizen-sessions", json=make_session_body(ZHANG, "张明华", method="card",
                                                                         face_match=None))
    assert weak.status_code == 201, weak.text
    refused = kiosk.post(url, headers={"Authorization": f"Bearer {weak.json()['token']}", **idem()}, json=good)
    assert refused.status_code == 403, refused.text
    # without the kiosk's signature, or without a citizen session
    assert public.post(url, headers={**auth, **idem()}, json=good).status_code == 401
    assert kiosk.post(url, headers=idem(), json=good).status_code == 401
    # a field not asked for, one the form does not have, and a bad value: every problem at once, one per field
    bad = kiosk.post(url, headers={**auth, **idem()}, json={"fields": {
        "business_name": "别人的店", "owner_password": "x", "phone": "123", "business_scope": ""}})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "pre_review_failed"
    assert sorted(codes(bad)) == sorted([("field_not_requested", "/business_name"),
                                         ("unknown_field", "/owner_password"),
                                         ("form_invalid", "/phone"), ("form_invalid", "/business_scope")])
    wrong_type = kiosk.post(url, headers={**auth, **idem()}, json={"fields": {"phone": 13905529999}})
    assert wrong_type.status_code == 422 and codes(wrong_type) == [("form_invalid", "/phone")]
    empty = kiosk.post(url, headers={**auth, **idem()}, json={})
    assert empty.status_code == 422 and empty.json()["error"]["code"] == "supplement_empty"
    # nothing of it reached the application
    detail = kiosk.get(f"{APPS}/{number}", headers=auth).json()
    assert detail["progress"]["status"] == "supplement_required" and detail["form"] == FORM
    assert len(detail["outstanding_fields"]) == 2


def test_a_request_names_only_fields_of_the_form(platform, asked) -> None:
    number, _auth = asked
    with pytest.raises(SupplementRequestError, match="not fields of the sole-proprietor-registration form"):
        ask(platform, number, ["owner_password"])
    with pytest.raises(SupplementRequestError, match="no application"):
        ask(platform, "SP20990101000000", ["phone"])


def test_cli_request_supplement(tmp_path: Path) -> None:
    db = str(tmp_path / "platform.db")
    cli = [sys.executable, "-m", "service_platform.cli"]
    assert subprocess.run([*cli, "seed", "--demo", "--db", db], capture_output=True, timeout=120).returncode == 0
    run = subprocess.run([*cli, "application", "request-supplement", "--db", db, "--number", "SP20261026000501",
                          "--field", "business_scope", "--note", "经营范围请写明具体品类"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"number": "SP20261026000501", "status": "supplement_required",
                                      "fields": ["business_scope"], "materials": []}
    bad = subprocess.run([*cli, "application", "request-supplement", "--db", db, "--number", "SP20261026000501",
                          "--field", "nope", "--note", "x"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "nope" in bad.stderr and "business_scope" in bad.stderr
