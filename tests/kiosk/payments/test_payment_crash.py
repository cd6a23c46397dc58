"""kill -9 between journal states: a kiosk process pays an order and dies with SIGKILL at a chosen point (a real
SIGKILL: no cleanup); a fresh kiosk then reconciles before serving anyone. Afterwards the platform's ledger, the
journal and the pad's ledger agree, nothing is left unresolved and no order is paid twice."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from kiosk.payments.failpoints import ENV
from kiosk.payments.journal import PaymentJournal, PaymentState

CHILD = Path(__file__).with_name("_pay_child.py")
ROOT = Path(__file__).resolve().parents[3]

# (crash point, pad scenario, what the platform must say afterwards, the journal state the crash left)
POINTS = [
    ("after:created", "approve", "pending", PaymentState.CREATED),
    ("after:started", "approve", "pending", PaymentState.STARTED),      # the sale never left the kiosk
    ("after:sale_sent", "approve", "paid", PaymentState.STARTED),       # the pad went on and charged the card
    ("after:unknown", "unknown", "paid", PaymentState.UNKNOWN),
    ("after:approved", "approve", "paid", PaymentState.APPROVED),       # charged, not yet confirmed
    ("before:confirm", "approve", "paid", PaymentState.APPROVED),
    ("after:confirmed", "approve", "paid", PaymentState.CONFIRMED),
    ("after:declined", "decline", "pending", PaymentState.DECLINED),
]


def run_child(journal_path: Path, url: str, pty: str, order_no: str, channel: str, point: str) -> int:
    proc = subprocess.run([sys.executable, str(CHILD), str(journal_path), url, pty, order_no, channel],
                          env={**__import__("os").environ, ENV: point, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
                          capture_output=True, timeout=60)
    return proc.returncode


@pytest.mark.parametrize("point, scenario, platform_after, left", POINTS, ids=[p[0] for p in POINTS])
def test_kill_9_then_reconcile(point: str, scenario: str, platform_after: str, left: PaymentState, tmp_path: Path,
                               platform, platform_server, pad_sim, make_kit, new_order,
                               wait_for: Callable[..., Any]) -> None:
    order = new_order()
    pad_sim.control("scenario", name=scenario, outcome="approved")
    journal_path = tmp_path / "payments.sqlite3"   # the same file the make_kit journal uses
    code = run_child(journal_path, platform_server.url, pad_sim.endpoints["pty"], order.order_no, "card", point)
    assert code == -signal.SIGKILL, f"the kiosk process was not killed at {point} (exit {code})"
    (record,) = PaymentJournal(journal_path).for_order(order.order_no)
    assert record.state is left
    wait_for(lambda: not pad_sim.control("status")["busy"], 10, what="the pad to finish the sale alone")
    kit = make_kit(pad_sim)                          # the kiosk restarts: reconcile before serving anyone
    report = kit.service.reconcile()
    assert not report.still_open
    now = platform.payment_order(order.order_no)
    assert now.status == platform_after
    (record,) = kit.service.journal.for_order(order.order_no)
    assert record.state.resolved
    pad = pad_sim.control("ledger")["ledger"].get(order.order_no)
    if now.status == "paid":
        assert record.state is PaymentState.CONFIRMED and record.txn_ref == now.txn_ref
        assert pad is not None and pad["approvals"] == 1 and pad["net_fen"] == order.amount_fen
    else:
        assert record.state in (PaymentState.CANCELLED, PaymentState.DECLINED)
        assert pad is None or pad["net_fen"] == 0
    # after reconciliation the citizen can pay (or is told it is paid) — never charged twice
    if now.status == "pending":
        assert kit.service.pay(now, "card").status == "paid"
    assert kit.service.reconcile().checked == 0
    final = pad_sim.control("ledger")["ledger"][order.order_no]
    assert final["approvals"] == 1 and final["net_fen"] == order.amount_fen


def test_kill_9_while_waiting_for_the_phone_qr(tmp_path: Path, platform, platform_server, pad_sim, make_kit,
                                                new_order, phone_pays) -> None:
    order = new_order()
    journal_path = tmp_path / "payments.sqlite3"
    assert run_child(journal_path, platform_server.url, pad_sim.endpoints["pty"], order.order_no, "qr",
                     "after:started") == -signal.SIGKILL
    assert phone_pays(order).status_code == 200              # the phone paid while the kiosk was down
    kit = make_kit(pad_sim)
    assert kit.service.reconcile().confirmed == [order.order_no]
    (record,) = kit.service.journal.for_order(order.order_no)
    assert record.state is PaymentState.CONFIRMED and record.txn_ref == platform.payment_order(order.order_no).txn_ref
