"""Payment figures: order → approved on the pad simulator, a whole payment through the use case, and the
reconciliation time for 1,000 unresolved journal records.

Starts ``kiosk-sim payment-pad`` (pty) and the reference platform; everything goes through the real driver, journal
and platform client:

* pad: ``start`` → ``wait`` approved with the simulator's human steps set to zero (ECR framing, ACK/NAK, events —
  the kiosk's own overhead), and with its default demo timings (card 0.3 s, PIN 0.5 s, host 0.3 s);
* use case: ``PaymentService.pay`` — platform order read, journal created/started/approved/confirmed (each fsynced),
  the sale on the pad (zero human steps), confirmation on the platform;
* reconciliation: N unresolved records (by default 1,000: 5 % approved on the pad and never confirmed — real platform
  orders —, 5 % left in ``created``, the rest ``started`` but never sent) settled by ``reconcile()``.

Run: ``.venv/bin/python bench/payment_flow.py [--runs 30] [--records 1000]``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._support import kiosk_signer, start_platform  # noqa: E402
from drivers.payment.base import TxnStatus  # noqa: E402
from drivers.payment.ecr_pad import EcrPaymentPad  # noqa: E402
from drivers.sim.process import SimulatorProcess  # noqa: E402
from kiosk.payments.journal import PaymentJournal, PaymentState  # noqa: E402
from kiosk.payments.service import PaymentConfig, PaymentService  # noqa: E402
from kiosk.platform_client import MaterialRef, PaymentOrder, PlatformClient  # noqa: E402

WANG = ("230202197511053015", "王建国")
ZERO = {"card_s": 0.0, "pin_s": 0.0, "host_s": 0.0}
DEMO = {"card_s": 0.3, "pin_s": 0.5, "host_s": 0.3}


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def show(label: str, seconds: list[float]) -> None:
    ms = [s * 1000 for s in seconds]
    print(f"{label:<58} p50 {statistics.median(ms):7.1f} ms   p95 {pct(ms, 95):7.1f} ms   max {max(ms):7.1f} ms"
          f"   (n={len(ms)})")


def new_orders(client: PlatformClient, n: int) -> list[PaymentOrder]:
    token = client.open_citizen_session(*WANG, "resident_id", face_match=True).token
    certs = {c.type_code: c.id for c in client.my_e_certificates(token)}
    orders = []
    for _ in range(n):
        filed = client.file_application(
            token, "driving-licence-renewal", {"licence_file_no": "230200123456", "pickup": "window",
                                               "phone": "13905520004"},
            [MaterialRef(1, e_certificate_id=certs["driving_licence"]),
             MaterialRef(2, e_certificate_id=certs["health_exam"]), MaterialRef(3, defer=True)], commitment=True)
        orders.append(filed.payment_orders[0])
    return orders


def sale(pad: EcrPaymentPad, order: str) -> float:
    started = time.perf_counter()
    txn = pad.start(order, 1000)
    while (result := pad.wait(txn, 1.0)).status is TxnStatus.PENDING:
        pass
    assert result.status is TxnStatus.APPROVED, result
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--records", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, SimulatorProcess("payment-pad", "--pty") as sim, \
            start_platform(Path(tmp)) as platform_proc:
        work = Path(tmp)
        client = PlatformClient(platform_proc.endpoints["url"], "KSK-340302-0001", kiosk_signer(work), timeout_s=10)
        pad = EcrPaymentPad(port=sim.endpoints["pty"]).open()
        try:
            sim.control("set_timing", **ZERO)
            show("pad: order → approved (zero human steps)", [sale(pad, f"B{i:05d}") for i in range(args.runs)])
            sim.control("set_timing", **DEMO)
            show("pad: order → approved (demo card/PIN/host 1.1 s)",
                 [sale(pad, f"D{i:05d}") for i in range(max(5, args.runs // 3))])
            sim.control("set_timing", **ZERO)

            orders = new_orders(client, args.runs)
            journal = PaymentJournal(work / "bench-pay.sqlite3")
            service = PaymentService(journal, client, lambda ch: pad, PaymentConfig(wait_slice_s=0.05))
            times = []
            for order in orders:
                started = time.perf_counter()
                outcome = service.pay(order, "card")
                times.append(time.perf_counter() - started)
                assert outcome.status == "paid" and outcome.confirmed
            show("use case: pay() → confirmed on the platform (journaled)", times)

            n = args.records
            approved_n, created_n = max(1, n // 20), max(1, n // 20)
            started_n = n - approved_n - created_n
            real = new_orders(client, approved_n)
            rec_journal = PaymentJournal(work / "bench-reconcile.sqlite3")
            fill = time.perf_counter()
            for order in real:   # approved on the pad, the kiosk died before confirming
                record = rec_journal.create(order_no=order.order_no, amount_fen=order.amount_fen, channel="card",
                                            method="unionpay_card")
                rec_journal.transition(record.id, PaymentState.STARTED)
                sale(pad, order.order_no)
            for i in range(created_n):
                rec_journal.create(order_no=f"PX{i:08d}", amount_fen=1000, channel="card")
            for i in range(started_n):
                record = rec_journal.create(order_no=f"PS{i:08d}", amount_fen=1000, channel="card")
                rec_journal.transition(record.id, PaymentState.STARTED)
            fill = time.perf_counter() - fill
            reconciler = PaymentService(rec_journal, client, lambda ch: pad)
            report = reconciler.reconcile()
            assert not report.still_open and len(report.confirmed) == approved_n, report
            print(f"reconcile {n} unresolved records ({approved_n} approved → confirmed, {created_n} created, "
                  f"{started_n} started → not charged): {report.seconds:.2f} s, "
                  f"{report.seconds / n * 1000:.2f} ms/record   (setting them up took {fill:.1f} s)")
            ledger = sim.control("ledger")["ledger"]
            assert all(ledger[o.order_no]["approvals"] == 1 for o in real)
        finally:
            pad.close()
            client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
