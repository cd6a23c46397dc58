"""代办 through the outbox (kind ``proxy_application``), with the real core, simulators and platform: the platform
unreachable → accepted offline with an outbox reference (on screen and on the printed slip), filed later by the drain
exactly once even after the agent left; an answer lost after the platform accepted → the retry reuses the journaled
row and its Idempotency-Key (one application); nothing of the principal left in the outbox once delivered."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from kiosk.platform_client import PlatformClient
from kiosk.request_signing import KioskRequestSigner
from kiosk.usecases.proxy import KIND, Step, proxy_sender

pytestmark = pytest.mark.usefixtures("face_verified")

ZHANG_ID, LI_ID = "340302195803172018", "35010219490822102X"
SECRETS = (ZHANG_ID, LI_ID, "李秀英", "张明华", "13905520011")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def filed_for_li(platform_server, after: int) -> list[tuple]:
    """Applications filed for the principal by the agent since row ``after``: (number, service, relationship)."""
    return platform_server.query(
        "SELECT a.number, a.service_code, g.relationship FROM applications a JOIN application_agents g "
        "ON g.application_id = a.id WHERE a.id > ? AND a.applicant_id_number = ? AND g.agent_id_number = ?",
        after, LI_ID, ZHANG_ID)


def last_id(platform_server) -> int:
    return platform_server.query("SELECT coalesce(max(id), 0) FROM applications")[0][0]


def filled_form(kiosk, call) -> None:
    """The agent (张) confirmed, the principal's (李) card read, senior-card chosen and its form filled in."""
    flow = kiosk.core.proxy
    kiosk.identify("zhang")
    call(flow.begin)
    kiosk.core.devices.simulators["idcard"].control("place_card", identity="li")
    kiosk.next_event("proxy_principal")
    call(flow.choose, "senior-card")
    flow.set_field("/phone", "13905520011")
    flow.set_field("/emergency_contact/name", "张明华")
    flow.set_field("/emergency_contact/phone", "13905520012")
    flow.set_field("/pickup", "street_office", typed=False)
    flow.set_relationship("parent")


def outbox_bytes(core) -> bytes:
    """The outbox database as it lies on disk (with its WAL)."""
    path = Path(core.outbox.path)
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def down_client(core) -> PlatformClient:
    signer = KioskRequestSigner.from_file(core.kiosk_id, os.environ["KIOSK_TEST_SIGNING_KEY"])
    return PlatformClient(f"http://127.0.0.1:{closed_port()}", core.kiosk_id, signer, timeout_s=2, retries=0)


def test_platform_down_queues_with_a_reference_and_the_drain_files_it_once(kiosk, call, platform_server, wait_for):
    core, flow = kiosk.core, kiosk.core.proxy
    filled_form(kiosk, call)
    before = last_id(platform_server)
    down = down_client(core)
    core.outbox.register(KIND, proxy_sender(down))
    try:
        result = call(flow.submit)
    finally:
        down.close()
        core.outbox.register(KIND, proxy_sender(core.platform))

    assert result.status == "queued" and result.reference.startswith("KQ") and result.number == ""
    assert flow.state.step is Step.RESULT and (result.principal_masked, result.agent_masked) == ("李*英", "张*华")
    assert result.print_error is None
    slip = wait_for(lambda: next((r for r in reversed(kiosk.receipts()) if result.reference in r["text"]), None),
                    what="the slip with the outbox reference")
    lines = slip["text"].split("\n")
    assert f"受理参考号：{result.reference}" in lines and "申请人（委托人）：李*英" in lines
    assert "代办人：张*华（父母）" in lines and not any(line.startswith("办件编号") for line in lines)
    assert slip["qr"] == [], "no application to look up yet"
    assert not any(secret in slip["text"] for secret in SECRETS)

    item = core.outbox.get(flow.state.item_id, decrypt=True)
    assert (item.kind, item.state, item.reference) == (KIND, "pending", result.reference)
    assert item.payload["principal"]["id_number"] == LI_ID and item.payload["relationship"] == "parent"
    assert LI_ID.encode() not in outbox_bytes(core), "the principal's data is sealed at rest"
    assert filed_for_li(platform_server, before) == [], "nothing reached the platform"

    core.end_session("finished")             # the agent has left: the drain files it with X-Captured-At
    # the outbox's own retry loop (woken as when the platform is reachable again)
    wait_for(lambda: (core.outbox_drainer.wake(), core.outbox.get(item.id).state == "submitted")[1], timeout=30,
             what="the queued proxy application filed by the drainer")
    done = core.outbox.get(item.id, decrypt=True)
    [(number, service, relationship)] = filed_for_li(platform_server, before)
    assert (service, relationship) == ("senior-card", "parent") and done.result["number"] == number
    assert done.payload is None and done.result["proxy"]["principal_masked"] == "李*英"
    assert not any(secret in str(done.result) for secret in SECRETS)

    core.outbox.drain()                       # nothing open: nothing sent again
    assert filed_for_li(platform_server, before) == [(number, "senior-card", "parent")]
    core.flush_audit()
    audit = core.audit.path.read_text("utf-8")
    assert "proxy_queued" in audit and result.reference in audit
    assert not any(secret in audit for secret in SECRETS)


def test_a_lost_answer_is_retried_with_the_same_key(kiosk, call, platform_server, wait_for):
    """The platform accepted but its answer never reached the kiosk (the connection dropped): the row stays open;
    the agent's retry sends the same row with the same Idempotency-Key and the platform replays its first answer."""
    core, flow = kiosk.core, kiosk.core.proxy
    filled_form(kiosk, call)
    before = last_id(platform_server)
    real = proxy_sender(core.platform)
    keys: list[str] = []

    def accepted_then_lost(payload, key, captured_at):
        keys.append(key)
        real(payload, key, captured_at)
        raise ConnectionResetError("the answer was lost on the way back")

    core.outbox.register(KIND, accepted_then_lost)
    try:
        with pytest.raises(ConnectionResetError):
            call(flow.submit)
    finally:
        core.outbox.register(KIND, real)
    [(number, _service, _rel)] = filed_for_li(platform_server, before)
    first = core.outbox.get(flow.state.item_id)
    assert first.state == "pending" and first.idempotency_key == keys[0]
    assert flow.state.result is None and flow.state.step is Step.FORM

    result = call(flow.submit)                # the agent taps submit again
    assert result.status == "submitted" and result.number == number, "the platform replayed its first answer"
    assert flow.state.item_id == first.id and core.outbox.get(first.id).payload is None
    assert call(flow.submit) is result, "a second tap files and prints nothing more"
    wait_for(lambda: any(number in r["text"] for r in kiosk.receipts()), what="the receipt with the number")
    assert sum(number in r["text"] for r in kiosk.receipts()) == 1
    assert filed_for_li(platform_server, before) == [(number, "senior-card", "parent")], "one application"
    assert core.outbox.by_key(keys[0]).id == first.id
