"""代办 (applying for someone else) against the real server, both databases: the catalogue says which services allow
an agent; a proxy application records both persons (applicant = principal, agent beside it) and the principal sees it
in their own progress; hostile: a service that does not allow agents, a principal not in the registry or under
another name, the agent's own card as principal, a card-level session, an unsigned request, e-certificates."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

PROXY = "/api/v1/me/proxy-applications"
ZHANG = "340302195803172018"          # the agent (张明华)
LI, LI_NAME = "35010219490822102X", "李秀英"   # the principal
SENIOR_FORM = {"phone": "13905520011", "emergency_contact": {"name": "张明华", "phone": "13905520012"},
               "pickup": "street_office"}


def unregistered_id() -> str:
    """A made-up resident ID number with a valid check digit that the registry does not know."""
    from service_platform.identity import check_digit

    first17 = "34030219800101991"
    return first17 + check_digit(first17)


def principal(id_number: str = LI, name: str = LI_NAME) -> dict[str, str]:
    return {"id_number": id_number, "name": name, "document_kind": "resident_id"}


def draft(**over: Any) -> dict[str, Any]:
    body = {"service_code": "senior-card", "principal": principal(), "relationship": "child",
            "form": {**SENIOR_FORM, "birth_date": "1949-08-22"}, "materials": [{"index": 1, "defer": True}],
            "commitment": True}
    body.update(over)
    return body


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def test_catalogue_says_which_services_allow_an_agent(public: httpx.Client) -> None:
    allowed = public.get("/api/v1/services", params={"agent_allowed": "true", "limit": 100}).json()["items"]
    codes = {s["code"] for s in allowed}
    assert {"senior-card", "hukou-certificate"} <= codes and "id-card-renewal" not in codes
    assert all(s["agent_allowed"] for s in allowed)
    others = public.get("/api/v1/services", params={"agent_allowed": "false", "limit": 100}).json()["items"]
    assert codes.isdisjoint(s["code"] for s in others)
    senior = public.get("/api/v1/services/senior-card").json()
    assert senior["agent_allowed"] is True and "代" in senior["agent_note"]
    renewal = public.get("/api/v1/services/id-card-renewal").json()
    assert renewal["agent_allowed"] is False and renewal["agent_note"] is None
    # sample filled forms (示范文本) come with the guide when the platform has them
    assert renewal["sample_forms"][0]["title"].endswith("（示范文本）")
    assert all(f["label"] and f["value"] for f in renewal["sample_forms"][0]["fields"])
    assert public.get("/api/v1/services/traffic-violation-query").json()["sample_forms"] == []


def test_proxy_application_records_both_persons(kiosk: httpx.Client, public: httpx.Client, platform: Any,
                                                open_session: Callable[[str], dict[str, str]]) -> None:
    agent = open_session(ZHANG)
    pre = kiosk.post(f"{PROXY}/prefill", headers=agent,
                     json={"service_code": "senior-card", "principal": principal()})
    assert pre.status_code == 200, pre.text
    assert pre.json()["form"]["birth_date"] == "1949-08-22"   # the principal's, from the registry
    headers = {**agent, **key()}
    r = kiosk.post(PROXY, headers=headers, json=draft())
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["proxy"] == {"agent_masked": "张*华", "principal_masked": "李*英", "relationship": "child"}
    assert body["progress"]["applicant_masked"] == "李*英" and body["outstanding"] == [1]
    number = body["number"]
    again = kiosk.post(PROXY, headers=headers, json=draft())   # the same key: the same application
    assert again.status_code == 201 and again.json()["number"] == number
    rows = platform.query(
        "SELECT a.applicant_id_number, a.applicant_name, g.agent_id_number, g.agent_name, g.relationship, "
        "g.kiosk_id FROM applications a JOIN application_agents g ON g.application_id = a.id WHERE a.number = :n",
        n=number)
    assert rows == [(LI, LI_NAME, ZHANG, "张明华", "child", "KSK-340302-0001")]
    # the principal follows it like their own application (progress lookup with their ID number's last 4)
    looked = public.post(f"/api/v1/applications/{number}/lookup", json={"id_last4": LI[-4:]})
    assert looked.status_code == 200 and looked.json()["applicant_masked"] == "李*英"
    assert "代办" in looked.json()["timeline"][0]["note"] and ZHANG not in looked.text and "张明华" not in looked.text
    assert public.post(f"/api/v1/applications/{number}/lookup", json={"id_last4": ZHANG[-4:]}).status_code == 404


@pytest.mark.parametrize("case", ["agent_not_allowed", "unknown_principal", "wrong_name", "self", "e_certificate"])
def test_hostile_proxy_applications_are_refused(case: str, kiosk: httpx.Client, platform: Any,
                                               open_session: Callable[[str], dict[str, str]]) -> None:
    agent = open_session(ZHANG)
    body, status, code = {
        # 居民身份证换领 needs the holder in person: not open to agents whatever the kiosk sends
        "agent_not_allowed": (draft(service_code="id-card-renewal", form={"reason": "expired"}), 403,
                              "agent_not_allowed"),
        "unknown_principal": (draft(principal=principal(unregistered_id(), "未登记")), 403,
                              "principal_not_recognised"),
        "wrong_name": (draft(principal=principal(LI, "李秀兰")), 403, "principal_not_recognised"),
        "self": (draft(principal=principal(ZHANG, "张明华")), 422, "principal_is_agent"),
        "e_certificate": (draft(materials=[{"index": 1, "e_certificate_id": "ec_someone_elses_certificate"}]), 422,
                          "pre_review_failed"),
    }[case]
    before = platform.query("SELECT count(*) FROM application_agents")[0][0]
    r = kiosk.post(PROXY, headers={**agent, **key()}, json=body)
    assert r.status_code == status and r.json()["error"]["code"] == code, r.text
    if case == "e_certificate":
        problems = r.json()["error"]["details"]["problems"]
        assert {"code": "e_certificate_not_for_proxy", "index": 1} in [
            {"code": p["code"], "index": p["material_index"]} for p in problems]
    assert platform.query("SELECT count(*) FROM application_agents")[0][0] == before
    if case in ("unknown_principal", "wrong_name"):   # the check is audited without the number or the name
        assert not platform.query("SELECT 1 FROM identity_audit WHERE id_hash = :n", n=body["principal"]["id_number"])
        assert platform.query("SELECT count(*) FROM identity_audit WHERE action = 'proxy_principal' AND "
                              "outcome = 'principal_not_recognised'")[0][0] >= 1


def test_who_may_file_a_proxy_application(kiosk: httpx.Client, public: httpx.Client,
                                          make_session_body: Callable[..., dict[str, Any]]) -> None:
    # unsigned: no kiosk, no filing
    r = public.post(PROXY, headers=key(), json=draft())
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    # signed, without a citizen session
    r = kiosk.post(PROXY, headers=key(), json=draft())
    assert r.status_code == 401 and r.json()["error"]["code"] == "session_required"
    # the agent only tapped a card (no face check): not enough to act for someone else
    opened = kiosk.post("/api/v1/citizen-sessions", json=make_session_body(ZHANG, "张明华", method="card",
                                                                           face_match=None))
    assert opened.status_code == 201, opened.text
    card_only = {"Authorization": f"Bearer {opened.json()['token']}"}
    for url, body in ((PROXY, draft()), (f"{PROXY}/prefill", {"service_code": "senior-card",
                                                              "principal": principal()})):
        r = kiosk.post(url, headers={**card_only, **key()}, json=body)
        assert r.status_code == 403 and r.json()["error"]["code"] == "verification_level_insufficient"
