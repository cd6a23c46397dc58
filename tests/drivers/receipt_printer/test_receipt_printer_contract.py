"""The receipt-printer contract, exercised through the real driver (python-escpos Network/Serial) against the
``kiosk-sim receipt-printer`` process: what the emulator decoded, captured and rendered is what the kiosk meant."""
from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Callable

import cv2
import pytest

from drivers.base import DeviceState, PaperState
from drivers.errors import CoverOpen, DeviceTimeout, HardwareError, NoDevice, PaperOut, PrinterOffline
from drivers.receipt_printer.document import Barcode, Feed, QRCode, Receipt, Rule, Text
from drivers.receipt_printer.escpos_printer import EscposReceiptPrinter, escpos_printers
from drivers.sim.process import SimulatorProcess
from tests.qr_reading import read_qr

APPLICATION_NO = "SP2026041500123"
NUMBER_LINE = f"办件编号：{APPLICATION_NO}（请妥善保管）。"
NOTICE = "受理时间：2026年4月15日 09:30；请于5个工作日后，凭本凭条及身份证到3号窗口领取“营业执照”。"


def service_receipt(job_id: str = "job-1") -> Receipt:
    return Receipt(
        blocks=[
            Text("某某市政务服务中心", bold=True, size="double", align="center"),
            Rule(),
            Text(NUMBER_LINE),
            Text(NOTICE),
            QRCode(APPLICATION_NO, size=6),
            Barcode(APPLICATION_NO),
            Feed(1),
            Text("——谢谢使用——", align="center"),
        ],
        job_id=job_id,
        title="受理回执",
    )


def receipts(sim: SimulatorProcess) -> list[dict]:
    return sim.control("receipts")["receipts"]


# --- printing ----------------------------------------------------------------------------------------------------------

def test_chinese_text_with_full_width_punctuation_and_qr_print_exactly(printer: EscposReceiptPrinter,
                                                                       sim: SimulatorProcess) -> None:
    receipt = service_receipt()
    result = printer.print_receipt(receipt)

    assert result.job_id == "job-1"
    assert result.paper is PaperState.FULL
    assert result.bytes_sent == len(printer.render(receipt))
    assert result.duration_s > 0
    [printed] = receipts(sim)
    assert printed["cut"] is True and printed["partial"] is False
    lines = printed["text"].split("\n")
    assert NUMBER_LINE in lines                               # every character, full-width ones included
    assert NOTICE in printed["text"].replace("\n", "")        # wrapped to 48 columns, nothing lost
    assert "某某市政务服务中心" in lines and "——谢谢使用——" in lines
    assert "?" not in printed["text"] and "\ufffd" not in printed["text"]
    assert printed["qr"] == [APPLICATION_NO]                  # as captured from GS ( k
    assert printed["barcodes"] == [{"symbology": "CODE128", "data": APPLICATION_NO}]
    assert read_qr(printed["png"]) == APPLICATION_NO        # and the rendered symbol scans
    assert Path(printed["txt"]).read_text("utf-8") == printed["text"] + "\n"
    assert cv2.imread(printed["png"]).shape[1] == 576         # 80 mm paper, 8 dots/mm printable width
    assert printer.counters == {"receipts_printed": 1, "bytes_sent": result.bytes_sent, "jobs_failed": 0}


def test_long_text_wraps_within_the_paper_and_each_receipt_is_its_own_file(printer: EscposReceiptPrinter,
                                                                          sim: SimulatorProcess) -> None:
    printer.print_receipt(Receipt([Text("第一张")], job_id="a"))
    printer.print_receipt(Receipt([Text("第二张：" + "长" * 60)], job_id="b"))

    first, second = receipts(sim)
    assert (first["text"].split("\n")[0], second["index"]) == ("第一张", first["index"] + 1)
    body = [line for line in second["text"].split("\n") if line]
    assert body == ["第二张：" + "长" * 20, "长" * 24, "长" * 16]  # 24 Chinese characters per 80 mm line


def test_near_end_is_reported_in_the_result_not_raised(printer: EscposReceiptPrinter, sim: SimulatorProcess) -> None:
    sim.control("set_paper", state="near_end")

    result = printer.print_receipt(service_receipt())

    assert result.paper is PaperState.LOW
    assert [r["cut"] for r in receipts(sim)] == [True]


@pytest.mark.parametrize(("command", "args", "error"), [
    ("set_paper", {"state": "out"}, PaperOut),
    ("set_cover", {"open": True}, CoverOpen),
    ("set_online", {"online": False}, PrinterOffline),
    ("set_error", {"kind": "unrecoverable"}, HardwareError),
])
def test_print_is_refused_before_the_first_byte(printer: EscposReceiptPrinter, sim: SimulatorProcess,
                                                command: str, args: dict, error: type) -> None:
    sim.control(command, **args)

    with pytest.raises(error) as raised:
        printer.print_receipt(service_receipt("refused"))

    assert raised.value.bytes_sent == 0 and raised.value.job_id == "refused"
    state = sim.control("status")
    assert state["status_requests"] >= 3                      # it asked (DLE EOT, real-time) ...
    assert state["data_bytes"] == 0                           # ... and sent nothing else
    assert receipts(sim) == []
    assert printer.counters["jobs_failed"] == 1


def test_paper_running_out_mid_job_raises_with_bytes_sent_and_leaves_a_partial(printer: EscposReceiptPrinter,
                                                                               sim: SimulatorProcess) -> None:
    receipt = service_receipt("mid-job")
    job_size = len(printer.render(receipt))
    sim.control("paper_out_after", bytes=job_size // 3)

    with pytest.raises(PaperOut) as raised:
        printer.print_receipt(receipt)

    assert raised.value.bytes_sent == job_size                # the printer got the whole job but could not print it
    assert raised.value.placeholders == {"bytes_sent": job_size, "job_id": "mid-job"}
    [partial] = receipts(sim)
    assert partial["cut"] is False and partial["txt"].endswith("receipt-%04d.partial.txt" % partial["index"])
    assert Path(partial["png"]).name.endswith(".partial.png") and Path(partial["png"]).exists()
    assert partial["text"].startswith("某某市政务服务中心") and APPLICATION_NO not in partial["qr"]
    state = sim.control("status")
    assert state["paper"] == "out" and state["discarded_bytes"] > 0
    assert printer.status().paper is PaperState.OUT

    # staff refill the paper: the journal's reprint comes out whole
    sim.control("set_paper", state="ok")
    assert printer.print_receipt(receipt).paper is PaperState.FULL
    partial_lines = partial["text"].split("\n")
    full_lines = receipts(sim)[1]["text"].split("\n")
    assert full_lines[:len(partial_lines) - 1] == partial_lines[:-1]
    assert full_lines[len(partial_lines) - 1].startswith(partial_lines[-1])


def test_unrenderable_receipt_fails_before_anything_is_sent(printer: EscposReceiptPrinter,
                                                            sim: SimulatorProcess) -> None:
    receipt = Receipt([Text("正常的一行"), Barcode("X" * 40)])        # too wide for 576 dots

    with pytest.raises(ValueError, match="too long"):
        printer.print_receipt(receipt)

    assert sim.control("status")["bytes_received"] == 0


def test_jobs_from_several_threads_never_interleave(printer: EscposReceiptPrinter, sim: SimulatorProcess) -> None:
    errors: list[BaseException] = []

    def job(n: int) -> None:
        try:
            for k in range(3):
                printer.print_receipt(Receipt([Text(f"窗口{n}：第{k}张"), Text("，".join([f"{n}"] * 30)),
                                               QRCode(f"SP-{n}-{k}")], job_id=f"{n}-{k}"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=job, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert errors == []
    printed = receipts(sim)
    assert len(printed) == 12 and printer.counters["receipts_printed"] == 12
    for r in printed:
        n, k = r["qr"][0].split("-")[1:]
        assert r["text"].startswith(f"窗口{n}：第{k}张\n")
        assert r["text"].replace("\n", "").count("，") == 29 and set(r["text"]) <= set(f"窗口{n}：第{k}张，\n[QR:SP-]")


# --- status ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("command", "args", "device", "paper", "error_code"), [
    (None, {}, DeviceState.ONLINE, PaperState.FULL, None),
    ("set_paper", {"state": "near_end"}, DeviceState.ONLINE, PaperState.LOW, None),
    ("set_paper", {"state": "out"}, DeviceState.ONLINE, PaperState.OUT, "paper_out"),
    ("set_cover", {"open": True}, DeviceState.OFFLINE, PaperState.FULL, "cover_open"),
    ("set_online", {"online": False}, DeviceState.OFFLINE, PaperState.FULL, "printer_offline"),
    ("set_error", {"kind": "autocutter"}, DeviceState.HARDWARE_ERROR, PaperState.FULL, "autocutter_error"),
])
def test_status_reports_each_printer_state(printer: EscposReceiptPrinter, sim: SimulatorProcess, command: str | None,
                                           args: dict, device: DeviceState, paper: PaperState,
                                           error_code: str | None) -> None:
    if command:
        sim.control(command, **args)

    status = printer.status()

    assert (status.device, status.paper, status.error_code) == (device, paper, error_code)
    assert status.usable is (device is DeviceState.ONLINE and paper is not PaperState.OUT)
    assert status.kind == "receipt_printer" and status.counters["receipts_printed"] == 0
    assert status.to_dict()["device"] == device.value


@pytest.mark.parametrize(("state", "paper_status", "online"), [("ok", 2, True), ("near_end", 1, True),
                                                               ("out", 0, False)])
def test_python_escpos_reads_the_emulator_like_a_printer(sim: SimulatorProcess, state: str, paper_status: int,
                                                         online: bool) -> None:
    sim.control("set_paper", state=state)
    host, port = sim.endpoints["tcp"].rsplit(":", 1)
    plain = escpos_printers.Network(host, int(port), timeout=2)
    plain.open()
    try:
        assert plain.paper_status() == paper_status
        assert plain.is_online() is online
        sim.control("set_paper", state="ok")
        sim.control("set_online", online=False)
        assert plain.is_online() is False
    finally:
        plain.close()


# --- connection faults -------------------------------------------------------------------------------------------------

def test_no_printer_on_the_port_is_no_device(closed_port: int) -> None:
    printer = EscposReceiptPrinter(connection="network", host="127.0.0.1", port=closed_port, timeout_s=1.0)

    status = printer.status()
    assert (status.device, status.error_code) == (DeviceState.NO_DEVICE, "no_device")
    with pytest.raises(NoDevice) as raised:
        printer.print_receipt(service_receipt())
    assert raised.value.bytes_sent == 0
    with pytest.raises(NoDevice):
        printer.open()
    assert not printer.is_open


def test_usb_printer_that_is_not_there_is_no_device() -> None:
    printer = EscposReceiptPrinter(connection="usb", vendor_id=0x0416, product_id=0x5011)

    status = printer.status()

    assert (status.device, status.error_code, status.extra["address"]) == (DeviceState.NO_DEVICE, "no_device",
                                                                          "usb:0416:5011")
    with pytest.raises(NoDevice):
        printer.print_receipt(service_receipt())


def test_driver_reconnects_after_the_printer_hangs_up(printer: EscposReceiptPrinter, sim: SimulatorProcess) -> None:
    assert printer.status().device is DeviceState.ONLINE
    assert sim.control("drop_connections")["dropped"] == 1

    assert printer.print_receipt(service_receipt()).paper is PaperState.FULL
    assert len(receipts(sim)) == 1


def test_printer_switched_off_becomes_no_device(tmp_path: Path) -> None:
    sim = SimulatorProcess("receipt-printer", "--tcp", "127.0.0.1:0", "--out", str(tmp_path))
    host, port = sim.endpoints["tcp"].rsplit(":", 1)
    printer = EscposReceiptPrinter(connection="network", host=host, port=int(port), timeout_s=1.0)
    assert sim.endpoints["out"] == str(tmp_path) and set(sim.endpoints) == {"tcp", "control", "out"}
    try:
        assert printer.status().device is DeviceState.ONLINE
        sim.stop()
        assert sim.proc.returncode == 0
        assert printer.status().device is DeviceState.NO_DEVICE
        with pytest.raises(NoDevice):
            printer.print_receipt(service_receipt())
    finally:
        printer.close()
        sim.stop()


def test_connected_but_silent_printer_times_out_and_gets_no_job() -> None:
    received = bytearray()
    server = socket.create_server(("127.0.0.1", 0))

    def swallow() -> None:
        conn, _ = server.accept()
        with conn:
            while chunk := conn.recv(4096):
                received.extend(chunk)

    thread = threading.Thread(target=swallow, daemon=True)
    thread.start()
    printer = EscposReceiptPrinter(connection="network", host="127.0.0.1", port=server.getsockname()[1],
                                   timeout_s=0.2)
    try:
        status = printer.status()
        assert (status.device, status.error_code) == (DeviceState.OFFLINE, "timeout")
        with pytest.raises(DeviceTimeout) as raised:
            printer.print_receipt(service_receipt())
        assert raised.value.bytes_sent == 0
    finally:
        printer.close()
        thread.join(5)
        server.close()
    assert bytes(received) == b"\x10\x04\x01" * 2               # two status questions, no job bytes


def test_printer_without_gs_r_confirmation(make_printer: Callable[..., EscposReceiptPrinter],
                                          sim: SimulatorProcess) -> None:
    sim.control("set_gs_r", supported=False)
    receipt = service_receipt("unconfirmed")

    with pytest.raises(DeviceTimeout) as raised:             # the job went out but was never confirmed: unknown
        make_printer(job_timeout_s=0.3).print_receipt(receipt)
    assert raised.value.bytes_sent == len(make_printer().render(receipt))

    result = make_printer(confirm_print=False).print_receipt(receipt)   # the setting for such printers
    assert result.paper is PaperState.FULL
    assert [r["cut"] for r in receipts(sim)] == [True, True]


# --- other connections -------------------------------------------------------------------------------------------------

def test_serial_connection_over_the_emulators_pty(tmp_path: Path) -> None:
    with SimulatorProcess("receipt-printer", "--pty", "--out", str(tmp_path)) as sim:
        assert "tcp" not in sim.endpoints
        printer = EscposReceiptPrinter(connection="serial", device=sim.endpoints["pty"], baudrate=115200,
                                       timeout_s=1.0, poll_interval_s=0.05)
        try:
            sim.control("set_paper", state="near_end")
            assert printer.status().paper is PaperState.LOW
            assert printer.print_receipt(service_receipt()).paper is PaperState.LOW
            [printed] = receipts(sim)
            assert NUMBER_LINE in printed["text"].split("\n") and printed["qr"] == [APPLICATION_NO]
            sim.control("set_cover", open=True)
            with pytest.raises(CoverOpen):
                printer.print_receipt(service_receipt())
        finally:
            printer.close()


def test_file_connection_sends_the_job_without_status(tmp_path: Path) -> None:
    from drivers.receipt_printer.escpos_parser import EscPosParser
    from drivers.receipt_printer.escpos_parser import Text as TextEvent

    device = tmp_path / "lp0"
    printer = EscposReceiptPrinter(connection="file", device=str(device))
    status = printer.status()
    result = printer.print_receipt(service_receipt())
    printer.close()

    assert (status.device, status.paper) == (DeviceState.ONLINE, PaperState.UNKNOWN)
    assert result.paper is PaperState.UNKNOWN and result.bytes_sent == device.stat().st_size
    events = EscPosParser().feed(device.read_bytes())
    assert NUMBER_LINE in [e.text for e in events if isinstance(e, TextEvent)]
