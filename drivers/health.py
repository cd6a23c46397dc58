"""Device self-tests at three levels, after UnifiedPOS ``checkHealth``.

* ``internal`` — the device opens and answers a status query; nothing leaves the device.
* ``external`` — the device does its job once, for real: a test card read (the technician's card: only its masked
  number is kept), a test slip printed with a QR code, a camera frame with a face found, the payment pad's
  diagnosis (loopback) answered, a CUPS test page printed to completion.
* ``interactive`` — ``external``, then the technician confirms what only a person can see (the slip is readable,
  the QR code scans, the page is readable), through a ``confirm(question)`` callback: the CLI asks on the terminal,
  the kiosk's maintenance screen shows buttons.

Results are plain data with no personal data (the card number masked), so they may go to the audit journal, the
fleet and a technician's terminal as they are. Used by ``kiosk-profile self-test --level …`` and by the kiosk (the
nightly run, the maintenance screen, a fleet ``self_test`` command, a pushed profile's trial): this module sits
below both and imports neither.
"""
from __future__ import annotations

import enum
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from drivers.base import Device, DeviceState, DeviceStatus, PaperState
from drivers.errors import DeviceError, NoCard

log = logging.getLogger(__name__)

#: what the technician is asked at the interactive level, per question key (zh and en; the kiosk has its own tables)
QUESTIONS: dict[str, dict[str, str]] = {
    "slip_readable": {"zh_CN": "测试小票上的文字清晰可读吗？", "en": "Is the text on the test slip readable?"},
    "qr_scans": {"zh_CN": "用手机扫描测试小票上的二维码，能扫出 KIOSK-SELF-TEST 吗？",
                 "en": "Does the QR code on the test slip scan (it reads KIOSK-SELF-TEST)?"},
    "page_readable": {"zh_CN": "测试页打印清晰完整吗？", "en": "Is the test page printed clearly and completely?"},
    "preview_ok": {"zh_CN": "摄像头画面清晰、方向正确吗？", "en": "Is the camera picture sharp and the right way up?"},
}
#: the text the test slip's QR code holds (no kiosk or person data: anyone may scan it)
TEST_QR_TEXT = "KIOSK-SELF-TEST"

Confirm = Callable[[str], bool]
FaceDetector = Callable[[Any], int]


class Level(str, enum.Enum):
    INTERNAL = "internal"
    EXTERNAL = "external"
    INTERACTIVE = "interactive"

    @property
    def rank(self) -> int:
        return (Level.INTERNAL, Level.EXTERNAL, Level.INTERACTIVE).index(self)


@dataclass(frozen=True)
class Check:
    """One step of a self-test: its name, whether it passed, and a short reason code / detail (no personal data)."""

    name: str
    ok: bool
    code: str = ""
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "code": self.code, "detail": self.detail}


@dataclass(frozen=True)
class HealthResult:
    """A device's self-test at one level. ``reason`` is the first failed check's code (``paper_out``, ``no_card``,
    ``no_face``…), "" when it passed."""

    kind: str
    level: Level
    ok: bool
    checks: tuple[Check, ...] = ()
    status: DeviceStatus | None = None
    duration_s: float = 0.0

    @property
    def reason(self) -> str:
        return next((c.code or c.name for c in self.checks if not c.ok), "")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "level": self.level.value, "ok": self.ok, "reason": self.reason,
                "checks": [c.to_dict() for c in self.checks], "duration_s": round(self.duration_s, 3),
                **({"status": self.status.to_dict()} if self.status is not None else {})}


@dataclass
class HealthOptions:
    """How the external and interactive levels talk to the technician and how long they wait."""

    confirm: Confirm | None = None
    #: how long to wait for the technician's card on the reader
    card_timeout_s: float = 30.0
    #: how long a camera gets to show a face
    face_timeout_s: float = 10.0
    #: how long a CUPS test page may take
    page_timeout_s: float = 60.0
    #: how long a device just opened may say "starting" before its status counts
    start_timeout_s: float = 10.0
    #: counts faces in a BGR frame; default: dlib's HOG frontal face detector (dlib-bin), loaded on first use
    face_detector: FaceDetector | None = None
    #: told what the test waits for ("place_card", "look_at_camera"), e.g. to prompt on a terminal
    prompt: Callable[[str], None] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def _status_check(status: DeviceStatus) -> Check:
    """The device answers and says it works. Supplies (paper out, near end) are noted, not failed: the internal
    level tells a dead or misconfigured device from a working one; printing for real is the external level's job."""
    if status.device in (DeviceState.ONLINE, DeviceState.BUSY):
        supply = status.paper.value if status.paper in (PaperState.LOW, PaperState.OUT, PaperState.JAMMED) else ""
        return Check("status", True, "", f"paper {supply}" if supply else "")
    return Check("status", False, status.error_code or status.device.value, status.detail[:200])


def check_health(device: Device | None, kind: str, level: Level | str = Level.INTERNAL,
                 options: HealthOptions | None = None) -> HealthResult:
    """Self-test one device at ``level``; never raises for a device fault (a fault is a failed check)."""
    level = Level(level)
    options = options or HealthOptions()
    started = time.monotonic()
    checks: list[Check] = []
    status: DeviceStatus | None = None
    if device is None:
        checks.append(Check("open", False, "not_configured"))
        return HealthResult(kind, level, False, tuple(checks), None, time.monotonic() - started)
    try:
        device.open()
        checks.append(Check("open", True))
    except DeviceError as exc:
        checks.append(Check("open", False, exc.code, str(exc)[:200]))
        return HealthResult(kind, level, False, tuple(checks), None, time.monotonic() - started)
    deadline = time.monotonic() + options.start_timeout_s
    while True:
        try:
            status = device.status()
        except DeviceError as exc:  # the contract says status() never raises; a driver that does is a fault
            status = DeviceStatus(kind=kind, device=DeviceState.HARDWARE_ERROR, error_code=exc.code)
        if status.device is not DeviceState.STARTING or time.monotonic() >= deadline:
            break
        time.sleep(0.1)   # just opened (a camera before its first frame): give it a moment
    checks.append(_status_check(status))
    if checks[-1].ok and level.rank >= Level.EXTERNAL.rank:
        test = EXTERNAL_TESTS.get(kind)
        if test is None:
            checks.append(Check("external", True, "", "no external test for this kind: status only"))
        else:
            try:
                checks.extend(test(device, options, level is Level.INTERACTIVE))
            except DeviceError as exc:
                checks.append(Check("external", False, exc.code, str(exc)[:200]))
            except Exception as exc:  # noqa: BLE001 - a self-test reports, it never takes the caller down
                log.exception("external self-test of %s failed", kind)
                checks.append(Check("external", False, "test_error", type(exc).__name__))
    ok = all(c.ok for c in checks)
    return HealthResult(kind, level, ok, tuple(checks), status, time.monotonic() - started)


def _ask(options: HealthOptions, question: str) -> Check:
    if options.confirm is None:
        return Check(f"confirm:{question}", False, "no_confirmation", "interactive level needs a technician")
    answer = bool(options.confirm(question))
    return Check(f"confirm:{question}", answer, "" if answer else "technician_refused")


def _prompt(options: HealthOptions, what: str) -> None:
    if options.prompt is not None:
        options.prompt(what)


# --- the external tests, one per device kind -------------------------------------------------------------------------

def _card_reader(device: Any, options: HealthOptions, interactive: bool) -> list[Check]:
    """Wait for the technician's card and read it; keep only the masked number."""
    _prompt(options, "place_card")
    deadline = time.monotonic() + options.card_timeout_s
    while True:
        try:
            if device.find_card():
                document = device.read_card()
                return [Check("card_read", True, "", document.masked_id())]
        except NoCard:
            pass
        if time.monotonic() >= deadline:
            return [Check("card_read", False, "no_card", f"no card within {options.card_timeout_s:g} s")]
        time.sleep(0.1)


def _smart_card(device: Any, options: HealthOptions, interactive: bool) -> list[Check]:
    _prompt(options, "place_card")
    deadline = time.monotonic() + options.card_timeout_s
    while not device.card_present():
        if time.monotonic() >= deadline:
            return [Check("card_read", False, "no_card", f"no card within {options.card_timeout_s:g} s")]
        time.sleep(0.1)
    data = device.read_card()
    if hasattr(data, "masked_id"):
        return [Check("card_read", True, "", data.masked_id())]
    return [Check("card_read", True, "", str(getattr(data, "masked_pan", "") or "card answered"))]


def _receipt_printer(device: Any, options: HealthOptions, interactive: bool) -> list[Check]:
    from drivers.receipt_printer.document import Feed, QRCode, Receipt, Rule, Text

    receipt = Receipt(title="self-test", blocks=[
        Text("自助终端打印自检 / Printer self-test", bold=True, align="center"),
        Rule(),
        Text("中文：政务服务 一次告知 办事指南"),
        Text("English: ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789"),
        Text(time.strftime("%Y-%m-%d %H:%M:%S")),
        QRCode(TEST_QR_TEXT),
        Feed(2),
    ])
    result = device.print_receipt(receipt)
    checks = [Check("test_slip", True, "", f"{result.bytes_sent} bytes, paper {result.paper.value}")]
    if interactive:
        checks += [_ask(options, "slip_readable"), _ask(options, "qr_scans")]
    return checks


def _dlib_faces(image: Any) -> int:
    import dlib  # dlib-bin: the HOG detector needs no model file
    import numpy as np

    detector = getattr(_dlib_faces, "detector", None)
    if detector is None:
        detector = _dlib_faces.detector = dlib.get_frontal_face_detector()  # type: ignore[attr-defined]
    rgb = np.ascontiguousarray(image[:, :, ::-1])
    return len(detector(rgb, 1))


def _camera(device: Any, options: HealthOptions, interactive: bool) -> list[Check]:
    _prompt(options, "look_at_camera")
    detector = options.face_detector or _dlib_faces
    deadline = time.monotonic() + options.face_timeout_s
    seq, frames = 0, 0
    while time.monotonic() < deadline:
        frame = device.wait_frame(seq, timeout=max(0.1, deadline - time.monotonic()))
        if frame is None:
            continue
        seq, frames = frame.seq, frames + 1
        if detector(frame.image) > 0:
            w, h = frame.size
            checks = [Check("frame", True, "", f"{w}x{h}"), Check("face_found", True)]
            if interactive:
                checks.append(_ask(options, "preview_ok"))
            return checks
        time.sleep(0.2)   # a few frames a second is plenty for a self-test; spare the CPU
    if frames == 0:
        return [Check("frame", False, "no_frame", f"no frame within {options.face_timeout_s:g} s")]
    return [Check("frame", True, "", f"{frames} frames"),
            Check("face_found", False, "no_face", f"no face in {frames} frames")]


def _payment_pad(device: Any, options: HealthOptions, interactive: bool) -> list[Check]:
    """The pad's own diagnosis (nexo DiagnosisRequest / ECR status) answered twice in a row: the link carries a
    request and its answer both ways (a loopback); no payment is started."""
    first, second = device.status(), device.status()
    ok = first.usable and second.usable
    return [Check("loopback", ok, "" if ok else (second.error_code or second.device.value),
                  "diagnosis answered" if ok else second.detail[:200])]


def _licence_printer(device: Any, options: HealthOptions, interactive: bool) -> list[Check]:
    path = _test_page_pdf()
    try:
        result = device.print_pdf(path, job_id=f"selftest-{int(time.time())}", timeout_s=options.page_timeout_s)
    finally:
        os.unlink(path)
    ok = result.state == "completed"   # follow() raises a DeviceError for a job that did not complete
    checks = [Check("test_page", ok, "" if ok else "page_failed", f"{result.state}, {result.pages or 0} page(s)")]
    if ok and interactive:
        checks.append(_ask(options, "page_readable"))
    return checks


def _test_page_pdf() -> str:
    """A one-page PDF with a frame and a line of text (hand-written PDF 1.4: no PDF library needed)."""
    stream = b"q 2 w 36 36 523 770 re S Q BT /F1 24 Tf 72 720 Td (Kiosk licence printer self-test) Tj ET"
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    fd, path = tempfile.mkstemp(prefix="selftest-", suffix=".pdf")
    with os.fdopen(fd, "wb") as fh:
        fh.write(bytes(out))
    return path


EXTERNAL_TESTS: dict[str, Callable[[Any, HealthOptions, bool], list[Check]]] = {
    "idcard": _card_reader,
    "smartcard": _smart_card,
    "receipt_printer": _receipt_printer,
    "camera": _camera,
    "payment_pad": _payment_pad,
    "licence_printer": _licence_printer,
}


def check_all(devices: Mapping[str, Device | None], level: Level | str = Level.INTERNAL,
              options: HealthOptions | None = None, kinds: list[str] | None = None) -> dict[str, HealthResult]:
    """Self-test every device (or those in ``kinds``) at ``level``, one after another."""
    return {kind: check_health(devices.get(kind), kind, level, options) for kind in (kinds or list(devices))}


def summary(results: Mapping[str, HealthResult]) -> dict[str, Any]:
    """What goes to the audit journal and the fleet: per device ok + reason, and overall ok (no personal data)."""
    return {"ok": all(r.ok for r in results.values()),
            "devices": {k: {"ok": r.ok, "reason": r.reason, "level": r.level.value} for k, r in results.items()}}
