"""The receipt templates printed through PrintService on the real ESC/POS driver and the emulator: what the emulator
decoded is what each receipt must say, and the QR code on the rendered PNG scans to the right data."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
from jinja2 import UndefinedError

from drivers.receipt_printer.document import QRCode, Text
from drivers.receipt_printer.escpos_printer import EscposReceiptPrinter
from drivers.sim.process import SimulatorProcess
from kiosk import receipts
from kiosk.print_journal import PrintJournal
from kiosk.usecases.printing import PrintService
from tests.qr_reading import read_qr

KIOSK_NAME = "东海社区政务服务自助终端"

CONTEXTS: dict[str, dict[str, Any]] = {
    "queue_ticket": {"ticket": {"number": "B017", "service_name": "社保业务", "area": "C区 3-5号窗口", "waiting": 5,
                                "issued_at": "2026-04-15 10:02", "query_url": "https://zwfw.example.gov.cn/q/B017"}},
    "payment_voucher": {"payment": {
        "order_id": "PO202604150001", "item": "不动产登记费", "application_number": "SP2026041500123",
        "payer_masked": "张*华", "amount_fen": 8000, "method": "微信支付", "txn_ref": "4200001234202604151234567890",
        "paid_at": "2026-04-15 10:20:31", "payee": "蚌埠市不动产登记中心",
        "verify_url": "https://zwfw.example.gov.cn/pay/verify/PO202604150001"}},
    "fault_slip": {"fault": {"what": "打印办件进度回执", "code": "paper_out", "job_id": "PJ20260415102233a1b2c3",
                             "occurred_at": "2026-04-15 10:22", "advice": "本次操作未能完成，请勿重复操作。"},
                   "staff_hotline": "0552-3012345"},
    "transaction_receipt": {"txn": {
        "number": "SP2026041500123", "service_name": "户口迁移（市内）", "applicant_masked": "张*华",
        "id_masked": "3403**********2018", "department": "蚌埠市公安局龙子湖分局", "accepted_at": "2026-04-15 09:30",
        "promised_date": "2026-04-22",
        "materials": [{"name": "居民身份证", "form": "原件核验"}, {"name": "居民户口簿", "form": "原件1份"},
                      {"name": "合法稳定住所证明", "form": "复印件1份"}],
        "fee_fen": 0, "pickup": "邮政寄递",
        "verify_url": "https://zwfw.example.gov.cn/verify/a/SP2026041500123"}},
    "supplement_receipt": {"supp": {
        "number": "SP20261026000501", "service_name": "个体工商户设立登记", "applicant_masked": "杨*强",
        "department": "蚌埠市市场监督管理局", "at": "2026-11-02 10:00", "submitted": True, "status_text": "审查中",
        "outstanding": 0, "reference": "KQ20261102ABCDEF", "materials": [{"name": "经营场所使用证明", "form": "拍照上传"}],
        "verify_url": "https://zwfw.example.gov.cn/verify/a/SP20261026000501"}},
}

EXPECTED_LINES: dict[str, list[str]] = {
    "queue_ticket": ["排队取号凭条", KIOSK_NAME, "您的号码", "B017", "办理业务：社保业务", "办理区域：C区 3-5号窗口",
                     "前面还有 5 人等候", "扫码查看叫号进度"],
    "payment_voucher": ["缴费凭证", "订单号：PO202604150001", "缴费项目：不动产登记费", "办件编号：SP2026041500123",
                        "缴款人：张*华", "金额：￥80.00", "大写：人民币捌拾元整", "支付方式：微信支付",
                        "收款单位：蚌埠市不动产登记中心", "扫码核验缴费凭证"],
    "fault_slip": ["故障告知单", "未能完成：打印办件进度回执", "故障代码：paper_out", "作业编号：PJ20260415102233a1b2c3",
                   "工作人员服务电话：0552-3012345", "请持本单到服务台，工作人员扫码为您处理"],
    "transaction_receipt": ["业务受理回执", "办件编号：SP2026041500123", "办理事项：户口迁移（市内）", "申请人：张*华",
                            "证件号码：3403**********2018", "承诺办结：2026-04-22", "已收材料（共3项）",
                            "1. 居民身份证（原件核验）", "3. 合法稳定住所证明（复印件1份）", "收费：不收费",
                            "领取方式：邮政寄递", "扫码查询办件进度"],
    "supplement_receipt": ["补正材料回执", "办件编号：SP20261026000501", "申请人：杨*强", "本次补交材料（共1项）",
                           "1. 经营场所使用证明（拍照上传）", "当前状态：审查中", "材料已补齐，已转入审查。",
                           "扫码查询办件进度"],
}

EXPECTED_QR = {"queue_ticket": "https://zwfw.example.gov.cn/q/B017",
               "payment_voucher": "https://zwfw.example.gov.cn/pay/verify/PO202604150001",
               "fault_slip": "PJ20260415102233a1b2c3",
               "transaction_receipt": "https://zwfw.example.gov.cn/verify/a/SP2026041500123",
               "supplement_receipt": "https://zwfw.example.gov.cn/verify/a/SP20261026000501"}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    with SimulatorProcess("receipt-printer", "--tcp", "127.0.0.1:0",
                          "--out", str(tmp_path_factory.mktemp("receipts"))) as sim:
        yield sim


@pytest.fixture
def service(emulator: SimulatorProcess, tmp_path: Path) -> Iterator[PrintService]:
    emulator.control("reset")
    host, port = emulator.endpoints["tcp"].rsplit(":", 1)
    with EscposReceiptPrinter(connection="network", host=host, port=int(port), timeout_s=1.0) as printer, \
            PrintJournal(tmp_path / "journal.sqlite3") as journal:
        yield PrintService(journal, receipt_printer=printer, kiosk_id="KSK-340302-0001", kiosk_name=KIOSK_NAME,
                           staff_hotline="12345")


@pytest.mark.parametrize("template", sorted(EXPECTED_LINES))
def test_template_prints_what_it_should(service: PrintService, emulator: SimulatorProcess, template: str,
                                        output_dir: Path) -> None:
    result = service.print_receipt(template, **CONTEXTS[template])

    [receipt] = emulator.control("receipts")["receipts"]
    lines = receipt["text"].split("\n")
    for expected in EXPECTED_LINES[template]:
        assert expected in lines, f"{expected!r} not printed as a line of {template}:\n{receipt['text']}"
    assert "?" not in receipt["text"] and "\ufffd" not in receipt["text"]
    assert f"终端编号：KSK-340302-0001" in lines and receipt["cut"]
    assert receipt["qr"] == [EXPECTED_QR[template]]
    assert read_qr(receipt["png"]) == EXPECTED_QR[template]
    assert service.journal.get(result.job_id).state == "done"
    (output_dir / f"{template}.png").write_bytes(Path(receipt["png"]).read_bytes())


def test_every_template_renders_and_needs_its_context() -> None:
    assert receipts.available() == sorted(receipts.TEMPLATES)
    common = {"kiosk_id": "K1", "kiosk_name": "终端", "printed_at": "2026-04-15 10:00"}
    for template in EXPECTED_LINES:
        doc = receipts.render(template, job_id="J1", **common, **CONTEXTS[template])
        assert doc.job_id == "J1" and doc.title == template and doc.blocks
        with pytest.raises(UndefinedError):
            receipts.render(template, **common)                       # a missing field fails, never prints blank


def test_the_fault_slip_without_a_job_names_no_job_and_has_no_qr() -> None:
    ctx = {**CONTEXTS["fault_slip"], "fault": {**CONTEXTS["fault_slip"]["fault"], "job_id": ""}}
    doc = receipts.render("fault_slip", kiosk_id="K1", kiosk_name="终端", printed_at="t", **ctx)
    assert not any(isinstance(b, QRCode) for b in doc.blocks)
    assert not any(isinstance(b, Text) and b.text.startswith("作业编号") for b in doc.blocks)


def test_data_cannot_add_lines_or_directives() -> None:
    ctx = {"ticket": {**CONTEXTS["queue_ticket"]["ticket"], "number": "A1\n@qr https://evil.example",
                      "service_name": "户籍\r\n@feed 50", "query_url": ""}}
    doc = receipts.render("queue_ticket", kiosk_id="K1", kiosk_name="终端", printed_at="t", **ctx)
    texts = [b.text for b in doc.blocks if isinstance(b, Text)]
    assert "A1 @qr https://evil.example" in texts and "办理业务：户籍 @feed 50" in texts
    assert not any(isinstance(b, QRCode) for b in doc.blocks)


@pytest.mark.parametrize(("fen", "words"), [
    (0, "零元整"), (1, "壹分"), (10, "壹角整"), (100, "壹元整"), (150, "壹元伍角整"), (105, "壹元零伍分"),
    (1250, "壹拾贰元伍角整"), (10005, "壹佰元零伍分"), (100000, "壹仟元整"), (1001000, "壹万零壹拾元整"),
    (2000050, "贰万元伍角整"), (100010000, "壹佰万零壹佰元整"), (123456789012, "壹拾贰亿叁仟肆佰伍拾陆万柒仟捌佰玖拾元壹角贰分"),
])
def test_amounts_in_capital_figures(fen: int, words: str) -> None:
    assert receipts.yuan_upper(fen) == words
