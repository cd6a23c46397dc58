"""The sequence audit across controllers and the alert rules (pure logic; the end-to-end paths are tested with real
processes elsewhere)."""
from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

from fleet.controller import rules as R
from fleet.controller.audit import SequenceAuditor
from fleet.controller.store import Batch

NOW = 1_000_000


def entries(ctrl: str, kiosk: str, bd: int, seqs: list[int], recv: int = NOW) -> list[tuple[str, list[Any]]]:
    return [(ctrl, [kiosk, bd, s, "B" if s == 0 else "D", recv]) for s in seqs]


def no_lookup(ids: list[str]) -> dict:
    return {}


def test_an_unbroken_stream_has_no_gap_even_across_the_wrap() -> None:
    a = SequenceAuditor()
    stream = entries("c1", "K", 7, list(range(0, 256)))  # birth (0), then 1…255
    stream += [("c1", ["K", 7, s, "D", NOW]) for s in list(range(0, 40))]  # data wraps 255 → 0 → …
    assert a.audit(stream, NOW, {"c1"}, no_lookup) == []
    assert a.kiosks["K"].expected == 40


def test_one_controller_sees_a_gap_as_soon_as_a_later_seq_arrives() -> None:
    a = SequenceAuditor()
    assert a.audit(entries("c1", "K", 7, [0, 1, 2]), NOW, {"c1"}, no_lookup) == []
    gaps = a.audit(entries("c1", "K", 7, [5, 6]), NOW, {"c1"}, no_lookup)
    assert gaps == [("K", "bdSeq 7: expected seq 3, got 5")]
    assert a.audit(entries("c1", "K", 7, [7, 8]), NOW, {"c1"}, no_lookup) == []


def test_two_controllers_with_one_far_behind_is_not_a_gap() -> None:
    """Round-robin: c1 gets the odd seqs, c2 the even ones, and c2 is seconds behind."""
    a = SequenceAuditor(fallback_ms=10_000)
    alive = {"c1", "c2"}
    assert a.audit(entries("c2", "K", 1, [0]) + entries("c1", "K", 1, [1, 3, 5, 7]), NOW, alive, no_lookup) == []
    assert a.audit([], NOW + 5_000, alive, no_lookup) == []  # c2 still busy with 2, 4, 6
    assert a.audit(entries("c2", "K", 1, [2, 4, 6, 8]), NOW + 6_000, alive, no_lookup) == []
    assert a.kiosks["K"].expected == 9


def test_two_controllers_a_message_lost_by_one_of_them_is_found() -> None:
    a = SequenceAuditor()
    alive = {"c1", "c2"}
    a.audit(entries("c1", "K", 1, [0, 2]) + entries("c2", "K", 1, [1]), NOW, alive, no_lookup)
    # seq 3 never reached c2; both have moved on past it
    gaps = a.audit(entries("c1", "K", 1, [4]) + entries("c2", "K", 1, [5]), NOW, alive, no_lookup)
    assert gaps == [("K", "bdSeq 1: expected seq 3, got 4")]


def test_data_without_its_birth_and_duplicates() -> None:
    a = SequenceAuditor()
    gaps = a.audit(entries("c1", "K", 9, [4, 5]), NOW, {"c1"}, lambda ids: {"K": (8, True)})
    assert gaps == [("K", "data from session bdSeq 9 without its birth")]
    # a redelivered message (QoS 1 / outbox replay) is not a gap
    assert a.audit(entries("c1", "K", 9, [5, 6]), NOW, {"c1"}, no_lookup) == []
    # a rebirth resets the sequence
    assert a.audit(entries("c1", "K", 9, [0, 1]), NOW, {"c1"}, no_lookup) == []
    assert a.kiosks["K"].expected == 2


def test_a_quiet_controller_is_waited_for_only_until_the_fallback() -> None:
    a = SequenceAuditor(fallback_ms=10_000)
    alive = {"c1", "c2"}
    a.audit(entries("c1", "K", 1, [0, 1]), NOW, alive, no_lookup)
    assert a.audit(entries("c1", "K", 1, [3], recv=NOW), NOW + 1_000, alive, no_lookup) == []
    assert a.audit([], NOW + 11_000, alive, no_lookup) == [("K", "bdSeq 1: expected seq 2, got 3")]


def test_runs_logged_per_flush_audit_exactly_like_single_entries() -> None:
    """What a controller logs per flush (Batch.log_seq: consecutive seqs of a kiosk as one run) finds the same gaps,
    at the same audit, as one entry per message — over streams with losses, redeliveries, rebirths, the wrap at 256
    and two controllers taking turns."""
    for seed in range(40):
        rng = random.Random(seed)
        messages: list[tuple[str, int, int, str]] = []  # kiosk, bdSeq, seq, kind
        for kiosk_id in ("K1", "K2", "K3"):
            bd, seq = rng.randrange(256), 0
            messages.append((kiosk_id, bd, 0, "B"))
            for _ in range(rng.randrange(50, 700)):
                r = rng.random()
                if r < 0.01:
                    bd, seq = (bd + 1) % 256, 0
                    messages.append((kiosk_id, bd, 0, "B"))
                    continue
                seq = (seq + 1) % 256
                if r < 0.03:
                    continue  # lost on the way
                messages.append((kiosk_id, bd, seq, "D"))
                if r < 0.05:
                    messages.append((kiosk_id, bd, seq, "D"))  # redelivered
        rng.shuffle(messages)  # kiosks interleave; each kiosk's own order is restored below
        messages.sort(key=lambda m: m[0])
        by_kiosk = {k: [m for m in messages if m[0] == k] for k in ("K1", "K2", "K3")}
        stream = [m for group in zip(*by_kiosk.values()) for m in group]
        singles, runs = SequenceAuditor(), SequenceAuditor()
        now, pos, turn = NOW, 0, 0
        while pos < len(stream):
            round_singles: list[tuple[str, list[Any]]] = []
            round_runs: list[tuple[str, list[Any]]] = []
            for _flush in range(rng.randrange(1, 4)):
                ctrl = ("c1", "c2")[turn % 2]
                turn += 1
                take = stream[pos:pos + rng.randrange(1, 120)]
                pos += len(take)
                batch = Batch()
                for k, bd, seq, kind in take:
                    round_singles.append((ctrl, [k, bd, seq, kind, now]))
                    batch.log_seq(k, bd, seq, kind, now)
                round_runs += [(ctrl, e) for e in batch.seq_entries]
            now += 1_000
            expected = singles.audit(round_singles, now, {"c1", "c2"}, no_lookup)
            assert runs.audit(round_runs, now, {"c1", "c2"}, no_lookup) == expected, seed
        assert {k: (st.bd, st.expected, st.pending) for k, st in runs.kiosks.items()} == \
            {k: (st.bd, st.expected, st.pending) for k, st in singles.kiosks.items()}


def kiosk(**kw: Any) -> SimpleNamespace:
    base = dict(online=True, offline_since=None, offline_reason=None, host="{}", gap_open=False, gap_detail=None,
                state="ok")
    return SimpleNamespace(**{**base, **kw})


def device(kind: str, state: str = "ok", paper: str | None = None, error_code: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(kind=kind, state=state, paper=paper, error_code=error_code)


CFG = R.RuleConfig(offline_after_s=60, disk_low_pct=10, disk_low_mb=500)


def test_device_rules() -> None:
    got = R.desired_alerts(kiosk(), [device("receipt_printer", "fault", "out", "paper_out"),
                                     device("idcard", "offline", None, "timeout"),
                                     device("qr_scanner", "degraded", "near-end")], {}, NOW, CFG)
    assert got == {("paper_out", "receipt_printer"): ("critical", "paper_out"),
                   ("device_fault", "idcard"): ("major", "offline: timeout"),
                   ("paper_near_end", "qr_scanner"): ("warning", "paper_near_end")}
    assert R.desired_alerts(kiosk(), [device("idcard")], {}, NOW, CFG) == {}


def test_offline_rule_waits_and_keeps_stale_device_alerts() -> None:
    open_alerts = {("paper_out", "receipt_printer"): SimpleNamespace(severity="critical", detail="paper_out",
                                                                     open_key="K|paper_out|receipt_printer")}
    just_died = kiosk(online=False, offline_since=NOW - 10_000, offline_reason="will")
    assert R.desired_alerts(just_died, [], open_alerts, NOW, CFG) == {("paper_out", "receipt_printer"):
                                                                       ("critical", "paper_out")}
    long_gone = kiosk(online=False, offline_since=NOW - 61_000, offline_reason="will")
    assert R.desired_alerts(long_gone, [], {}, NOW, CFG) == {("kiosk_offline", ""): ("critical", "will")}


def test_disk_and_gap_rules_and_the_diff() -> None:
    k = kiosk(host='{"disk_free_pct": 4.5, "disk_free_mb": 300}', gap_open=True, gap_detail="lost")
    desired = R.desired_alerts(k, [], {}, NOW, CFG)
    assert desired == {("disk_low", ""): ("warning", "4.5% free, 300 MB free"), ("seq_gap", ""): ("warning", "lost")}
    existing = {("seq_gap", ""): SimpleNamespace(severity="warning", detail="lost", open_key="K|seq_gap|"),
                ("paper_out", "p"): SimpleNamespace(severity="critical", detail="x", open_key="K|paper_out|p")}
    opened, cleared, refreshed = R.diff("K", desired, existing, hits={("seq_gap", "")})
    assert [o["rule"] for o in opened] == ["disk_low"] and opened[0]["open_key"] == "K|disk_low|"
    assert cleared == ["K|paper_out|p"]
    assert refreshed == [{"open_key": "K|seq_gap|", "severity": "warning", "detail": "lost", "hits": 1}]
    assert R.kiosk_state(kiosk(online=False), []) == "offline"
    assert R.kiosk_state(kiosk(), [device("a", "degraded"), device("b", "fault")]) == "fault"


def test_audit_head_going_backwards_is_an_alert_a_declared_restart_is_not(tmp_path) -> None:
    h = lambda seq, digest="a", epoch=0: {"seq": seq, "hash": digest * 64, "epoch": epoch}  # noqa: E731
    assert R.audit_head_regression(h(10), h(11, "b")) is None                       # moving on
    assert "tail deleted" in R.audit_head_regression(h(10), h(7))
    assert "rewritten" in R.audit_head_regression(h(10), h(10, "b"))
    assert R.audit_head_regression(h(10), h(10)) is None                            # the same head again
    assert R.audit_head_regression(h(10), h(1, "c", 1)) is None                     # declared restart (key lost)
    assert "recreated" in R.audit_head_regression(h(10, "a", 1), h(500, "c", 0))
    assert R.desired_alerts(kiosk(), [], {}, NOW, CFG, audit_break="x") == {("audit_chain_broken", ""): ("critical", "x")}
    assert R.desired_alerts(kiosk(online=False, offline_since=NOW), [], {}, NOW, CFG, audit_break="x") == \
        {("audit_chain_broken", ""): ("critical", "x")}                             # offline or not
    # the store: in message order, only newer messages, broken stays until a declared restart
    from fleet.controller.store import Store

    store = Store(tmp_path / "fleet.db")
    store.create_schema()
    assert store.record_audit_heads({"K": [(5, h(10)), (6, h(12, "b"))]}, NOW) == {}
    assert store.record_audit_heads({"K": [(4, h(1))]}, NOW) == {}                  # older message: ignored
    assert "tail deleted" in store.record_audit_heads({"K": [(7, h(9, "c"))]}, NOW)["K"]
    with store.engine.connect() as conn:
        assert "K" in store.audit_breaks(conn, ["K"])
    assert store.record_audit_heads({"K": [(8, h(10, "d"))]}, NOW) == {}            # moves on, still broken
    with store.engine.connect() as conn:
        assert "K" in store.audit_breaks(conn, ["K"])
    store.record_audit_heads({"K": [(9, h(1, "e", 1))]}, NOW)                       # declared restart
    with store.engine.connect() as conn:
        assert store.audit_breaks(conn, ["K"]) == {}
