"""Receipt printing figures (target: receipt with QR, print → last byte accepted < 0.5 s; shared/README.md).

Starts ``kiosk-sim receipt-printer`` on TCP and times, for a typical progress receipt with a QR code:

* template render (Jinja2 → Receipt blocks) for every receipt template, and the driver's ESC/POS encoding;
* print → last byte accepted: ``EscposReceiptPrinter.print_receipt`` from the call until the printer has processed
  the last byte (its GS r 1 answer comes only after everything before it was processed), status check included;
* the same through ``PrintService`` (journal records queued/sent/done, each fsynced).

Run: ``.venv/bin/python bench/print_receipt.py [--runs 50]``.
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

from drivers.receipt_printer.escpos_printer import EscposReceiptPrinter  # noqa: E402
from drivers.sim.process import SimulatorProcess  # noqa: E402
from kiosk import receipts  # noqa: E402
from kiosk.print_journal import PrintJournal  # noqa: E402
from kiosk.usecases.printing import PrintService  # noqa: E402

COMMON = {"kiosk_id": "KSK-340302-0001", "kiosk_name": "东海社区政务服务自助终端", "printed_at": "2026-04-15 10:00"}
APPLICATION = {
    "number": "SP2026041500123", "service_name": "户口迁移（市内）", "applicant_masked": "张*华",
    "department": "蚌埠市公安局龙子湖分局", "submitted_at": "2026-04-15 09:30", "status_text": "审核中",
    "promised_date": "2026-04-22",
    "timeline": [{"at": f"2026-04-1{5 + i} 09:{10 + i}", "status_text": s, "department": "龙子湖分局户政科",
                  "note": "材料齐全，符合受理条件" if i == 0 else ""} for i, s in enumerate(["已收件", "已受理", "审核中"])],
}
CONTEXTS = {
    "progress": {"application": APPLICATION},
    "queue_ticket": {"ticket": {"number": "B017", "service_name": "社保业务", "area": "C区", "waiting": 5,
                                "issued_at": "10:02", "query_url": "https://zwfw.example.gov.cn/q/B017"}},
    "payment_voucher": {"payment": {"order_id": "PO202604150001", "item": "不动产登记费", "application_number": "SP1",
                                    "payer_masked": "张*华", "amount_fen": 8000, "method": "微信支付", "txn_ref": "42",
                                    "paid_at": "10:20", "payee": "蚌埠市不动产登记中心",
                                    "verify_url": "https://zwfw.example.gov.cn/pay/verify/PO202604150001"}},
    "fault_slip": {"fault": {"what": "打印办件进度回执", "code": "paper_out", "job_id": "PJ1", "occurred_at": "10:22",
                             "advice": "请勿重复操作。"}, "staff_hotline": "12345"},
    "transaction_receipt": {"txn": {"number": "SP2026041500123", "service_name": "户口迁移", "applicant_masked": "张*华",
                                    "id_masked": "3403**********2018", "department": "龙子湖分局",
                                    "accepted_at": "09:30", "promised_date": "2026-04-22",
                                    "materials": [{"name": "居民身份证", "form": "原件核验"}] * 4, "fee_fen": 0,
                                    "pickup": "邮政寄递"}},
}


def ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
    return f"p50 {statistics.median(values) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, max {values[-1] * 1000:.1f} ms"


def timed(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-receipt-") as folder:
        return run(args, Path(folder))


def run(args: argparse.Namespace, work: Path) -> int:
    for template, ctx in CONTEXTS.items():
        receipts.render(template, **COMMON, **ctx)                      # load + compile once
        print(f"render {template}: {ms(timed(lambda: receipts.render(template, **COMMON, **ctx), args.runs * 4))}")
    receipt = receipts.render("progress", job_id="bench", **COMMON, **CONTEXTS["progress"])
    with SimulatorProcess("receipt-printer", "--tcp", "127.0.0.1:0", "--out", str(work / "out")) as sim:
        host, port = sim.endpoints["tcp"].rsplit(":", 1)
        with EscposReceiptPrinter(connection="network", host=host, port=int(port)) as printer:
            job = printer.render(receipt)
            print(f"ESC/POS encoding of the progress receipt ({len(job)} bytes, QR): "
                  f"{ms(timed(lambda: printer.render(receipt), args.runs))}")
            printer.print_receipt(receipt)                              # connect, warm up
            direct = timed(lambda: printer.print_receipt(receipt), args.runs)
            sim.control("clear")
            with PrintJournal(work / "journal.sqlite3") as journal:
                service = PrintService(journal, receipt_printer=printer, **{k: COMMON[k] for k in
                                                                           ("kiosk_id", "kiosk_name")})
                journaled = timed(lambda: service.print_receipt("progress", **CONTEXTS["progress"]), args.runs)
                assert journal.counts()["done"] == args.runs
            assert len(sim.control("receipts")["receipts"]) == args.runs
    print(f"receipt with QR, print → last byte accepted (driver, {len(job)} bytes): {ms(direct)} (target < 500 ms)")
    print(f"receipt with QR, print through PrintService (render + journal + print): {ms(journaled)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
