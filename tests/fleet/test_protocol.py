"""The fleet status model and payload checks (fleet.protocol), from the kiosk's real DeviceStatus type."""
from __future__ import annotations

import pytest

from drivers.base import DeviceState, DeviceStatus, MediaState, PaperState
from fleet import protocol as P


def test_printer_paper_levels_map_to_supplies_and_state() -> None:
    def model(paper: PaperState) -> dict:
        return P.device_model(DeviceStatus("receipt_printer", DeviceState.ONLINE, paper=paper,
                                           counters={"receipts_printed": 7, "bytes_sent": 900, "jobs_failed": 0}))

    assert model(PaperState.FULL)["state"] == "ok" and model(PaperState.FULL)["supplies"] == {"paper": "ok"}
    near = model(PaperState.LOW)
    assert (near["state"], near["supplies"]["paper"], near["error_code"]) == ("degraded", "near-end", "paper_near_end")
    out = model(PaperState.OUT)
    assert (out["state"], out["supplies"]["paper"], out["error_code"]) == ("fault", "out", "paper_out")
    assert out["counters"]["pages"] == 7  # receipts_printed is the fleet's "pages printed"
    jammed = model(PaperState.JAMMED)
    assert jammed["state"] == "fault" and jammed["error_code"] == "paper_jammed"


@pytest.mark.parametrize("xfs, expected", [
    (DeviceState.ONLINE, "ok"), (DeviceState.BUSY, "ok"), (DeviceState.STARTING, "degraded"),
    (DeviceState.USER_ERROR, "degraded"), (DeviceState.OFFLINE, "offline"), (DeviceState.POWER_OFF, "offline"),
    (DeviceState.NO_DEVICE, "absent"), (DeviceState.HARDWARE_ERROR, "fault"), (DeviceState.FRAUD_ATTEMPT, "fault"),
])
def test_every_xfs_device_state_has_a_fleet_state(xfs: DeviceState, expected: str) -> None:
    assert P.device_model(DeviceStatus("idcard", xfs, media=MediaState.NOT_PRESENT))["state"] == expected


def test_card_reader_jam_is_a_fault_and_an_error_code_degrades() -> None:
    assert P.device_model(DeviceStatus("idcard", DeviceState.ONLINE, media=MediaState.JAMMED))["state"] == "fault"
    assert P.device_model(DeviceStatus("idcard", DeviceState.ONLINE, error_code="timeout"))["state"] == "degraded"


def test_only_whitelisted_fields_leave_and_free_text_is_scrubbed() -> None:
    status = DeviceStatus("idcard", DeviceState.HARDWARE_ERROR, error_code="read_failed",
                          detail="card 340302195803172018 failed", counters={"cards_read": 3, "weird": "x"},
                          extra={"last_name": "张明华", "port": "/dev/pts/3"})
    model = P.device_model(status)
    text = repr(model)
    assert "340302195803172018" not in text and "张明华" not in text and "/dev/pts" not in text
    assert model["error_text"] == "card 3403**********2018 failed"
    assert model["counters"] == {"cards_read": 3}
    assert set(model) == {"state", "xfs", "error_code", "error_text", "counters"}


def test_a_status_that_cannot_be_read_is_reported_as_a_fault() -> None:
    class Broken:
        def to_dict(self) -> dict:
            raise RuntimeError("boom")

    assert P.device_models({"camera": Broken()})["camera"]["state"] == "fault"
    assert P.device_models({"camera": Broken()})["camera"]["error_code"] == "status_unreadable"


def test_alarm_conditions_and_worst_state() -> None:
    devices = {"receipt_printer": {"state": "fault", "supplies": {"paper": "out"}},
               "idcard": {"state": "offline"}}
    assert P.alarm_conditions(devices) == {("receipt_printer", "paper_out"): "critical",
                                           ("idcard", "device_offline"): "major"}
    assert P.worst_state(devices) == "fault"
    assert P.worst_state({"a": {"state": "ok"}, "b": {"state": "degraded"}}) == "degraded"


def test_topics_round_trip() -> None:
    assert P.parse_topic(P.topic("KSK-1", "data")) == ("KSK-1", "data", None)
    assert P.parse_topic(P.topic("KSK-1", "cmd-result", "abc")) == ("KSK-1", "cmd-result", "abc")
    for bad in ("fleet/v1/KSK-1", "fleet/v2/K/data", "fleet/v1/K/data/extra", "other/v1/K/data", "fleet/v1/K/x"):
        assert P.parse_topic(bad) is None


@pytest.mark.parametrize("payload, reason", [
    ([1, 2], "not_object"),
    ({"kiosk_id": "OTHER", "ts": 1, "bdSeq": 0, "seq": 1, "mid": 1}, "kiosk_mismatch"),
    ({"kiosk_id": "K", "ts": "now", "bdSeq": 0, "seq": 1, "mid": 1}, "bad_ts"),
    ({"kiosk_id": "K", "ts": 1, "bdSeq": 256, "seq": 1, "mid": 1}, "bad_bdSeq"),
    ({"kiosk_id": "K", "ts": 1, "bdSeq": 0, "seq": -1, "mid": 1}, "bad_seq"),
    ({"kiosk_id": "K", "ts": 1, "bdSeq": 0, "seq": True, "mid": 1}, "bad_seq"),
    ({"kiosk_id": "K", "ts": 1, "bdSeq": 0, "seq": 1, "mid": 1, "devices": {"x": {"state": "melted"}}},
     "bad_device_state"),
])
def test_malformed_envelopes_are_named(payload: object, reason: str) -> None:
    with pytest.raises(P.PayloadError) as err:
        P.check_envelope("data", "K", payload)
    assert err.value.reason == reason


def test_birth_rules() -> None:
    good = {"kiosk_id": "K", "ts": 1, "bdSeq": 3, "seq": 0, "mid": 9, "devices": {}}
    assert P.check_envelope("birth", "K", good) is good
    with pytest.raises(P.PayloadError, match="birth_seq_not_zero"):
        P.check_envelope("birth", "K", {**good, "seq": 4})
    with pytest.raises(P.PayloadError, match="birth_without_devices"):
        P.check_envelope("birth", "K", {k: v for k, v in good.items() if k != "devices"})
    assert P.check_envelope("death", "K", {"kiosk_id": "K", "ts": 1, "bdSeq": 3})
