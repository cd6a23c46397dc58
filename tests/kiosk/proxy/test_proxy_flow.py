"""代办 through the kiosk core, the real ID reader simulator (two cards read by the real GA 467 driver) and the real
platform: the agent confirmed first, then the principal's card, then only services that allow an agent, the form
pre-filled for the principal, the application recorded with both persons and a receipt with both masked names.
Refusals: a card-only agent, the agent's own card as principal; personal data never in the audit journal."""
from __future__ import annotations

import logging

import httpx
import pytest

from kiosk.usecases.proxy import AgentNotConfirmed, Step

ZHANG_ID, LI_ID = "340302195803172018", "35010219490822102X"


def read_principal(kiosk, who: str) -> dict:
    kiosk.core.devices.simulators["idcard"].control("place_card", identity=who)
    return kiosk.next_event("proxy_principal")


@pytest.mark.usefixtures("face_verified")
def test_agent_applies_for_a_parent(kiosk, call, platform_server, wait_for, caplog):
    caplog.set_level(logging.DEBUG)
    flow = kiosk.core.proxy
    kiosk.identify("zhang")                       # the agent: card (+ face, on this camera-less profile)
    call(flow.begin)
    assert flow.waiting_for_principal
    got = read_principal(kiosk, "li")             # the principal's card on the same reader
    assert got["principal_masked"] == "李*英" and flow.state.step is Step.SERVICES
    assert kiosk.core.session.citizen.document.id_number == ZHANG_ID   # the session's citizen is still the agent

    services = call(flow.services)
    codes = {s.code for s in services}
    assert "senior-card" in codes and "id-card-renewal" not in codes and all(s.agent_allowed for s in services)
    state = call(flow.choose, "senior-card")
    assert state.form.get("/birth_date") == "1949-08-22"   # pre-filled for the principal, not the agent
    flow.set_field("/phone", "13905520011")
    flow.set_field("/emergency_contact/name", "张明华")
    flow.set_field("/emergency_contact/phone", "13905520012")
    flow.set_field("/pickup", "street_office", typed=False)
    flow.set_relationship("child")
    result = call(flow.submit)
    assert (result.agent_masked, result.principal_masked) == ("张*华", "李*英")
    rows = platform_server.query(
        "SELECT a.applicant_id_number, g.agent_id_number, g.relationship FROM applications a "
        "JOIN application_agents g ON g.application_id = a.id WHERE a.number = ?", result.number)
    assert rows == [(LI_ID, ZHANG_ID, "child")]
    assert result.print_error is None
    receipt = wait_for(lambda: next((r for r in reversed(kiosk.receipts()) if result.number in r["text"]), None),
                       what="the proxy receipt")
    lines = receipt["text"].split("\n")
    assert "申请人（委托人）：李*英" in lines and "代办人：张*华（子女）" in lines
    for secret in (ZHANG_ID, LI_ID, "张明华", "李秀英"):
        assert secret not in receipt["text"]
    assert receipt["qr"] and result.number in receipt["qr"][0]
    assert httpx.get(receipt["qr"][0], timeout=10).status_code == 200, "the printed QR opens its verify page"

    kiosk.core.flush_audit()
    audit = kiosk.core.audit.path.read_text("utf-8")
    assert "proxy_filed" in audit and "proxy_principal_read" in audit
    for secret in (ZHANG_ID, LI_ID, "李秀英", "13905520011"):
        assert secret not in audit and secret not in caplog.text
    kiosk.core.end_session("finished")           # the principal goes with the session
    assert kiosk.core.proxy.state is None


def test_card_alone_and_own_card_are_refused(kiosk, call, face_verified_later):
    flow = kiosk.core.proxy
    kiosk.identify("zhang")                       # no face check: a card-level session may not act for anyone
    with pytest.raises(AgentNotConfirmed):
        call(flow.begin)
    assert not flow.waiting_for_principal
    kiosk.core.end_session("finished")
    face_verified_later()
    kiosk.core.devices.simulators["idcard"].control("remove_card")
    kiosk.identify("chen")
    call(flow.begin)
    kiosk.core.devices.simulators["idcard"].control("remove_card")
    kiosk.core.devices.simulators["idcard"].control("place_card", identity="chen")
    error = kiosk.next_event("proxy_principal_error")["error"]
    assert error.code == "proxy_principal_is_agent" and flow.waiting_for_principal
