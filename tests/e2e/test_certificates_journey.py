"""E-certificate printing on the real window (issues 4 and 5): card → my e-certificates (numbers masked) → print on the
licence printer (a private cupsd with a cups-pdf queue) → the PDF that came out has the certificate's text; a second
copy is shown as a counted reprint. E-certificates need the holder confirmed (card+face, kiosk/identity_levels.py): these
kiosks have a camera (``kiosk-sim camera`` showing the holder, tests/e2e/conftest.py) and the citizen passes the face
check after the card."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from drivers.sim.control import send_command
from tests.e2e.conftest import pass_face_check, start_with_camera

pytestmark = pytest.mark.e2e

LICENCE_PRINTER = {"driver": "cups", "simulate": True, "required": False,
                   "settings": {"queue": "KioskPDF", "poll_interval_s": 0.05, "fault_grace_s": 0.3,
                                "job_timeout_s": 30.0}}
MARRIAGE_NO = "J340302-1984-001023"


def tap(ui, wait_for, aid: str) -> None:
    """Tap ``aid`` once it is shown, enabled and no longer moving (lists are laid out after their data arrive)."""
    seen: list[tuple[int, int]] = []

    def still() -> bool:
        found = ui.find(aid)
        if not found["found"] or found["disabled"]:
            seen.clear()
            return False
        seen.append((found["x"], found["y"]))
        return len(seen) >= 3 and len(set(seen[-3:])) == 1

    wait_for(still, interval=0.1, what=f"{aid} shown and settled")
    ui.tap(aid, wait_for)


def pdf_text(path: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout


def test_card_certificate_printed_pdf_has_its_text(start_kiosk, camera_sim, wait_for):
    ui = start_with_camera(start_kiosk, camera_sim, devices__licence_printer=LICENCE_PRINTER)
    ui.wait_screen("attract", wait_for, timeout=30)
    sims = wait_for(lambda: (lambda s: s if all(k in s for k in ("idcard", "licence_printer")) else None)(
        {k: v for k, v in ui.ask("simulators").items() if k != "ok"}), timeout=30, what="the simulators")
    out = Path(sims["licence_printer"]["out"])
    send_command(sims["idcard"]["control"], "place_card", identity="zhang")
    pass_face_check(ui, wait_for)
    tap(ui, wait_for, "tile_certificates")
    ui.wait_screen("certificates", wait_for)
    ui.wait_text("您的电子证照", wait_for)
    texts = ui.texts()
    assert not any("340302195803172018" in t or MARRIAGE_NO in t for t in texts), "numbers shown masked only"
    ui.screenshot("40-certificates")
    buttons = ui.ask("buttons")["buttons"]
    assert buttons and not [b for b in buttons if min(b["width"], b["height"]) < 60], buttons
    index = next(i for i in range(10) if "结婚证" in ui.find(f"cert_{i}").get("text", ""))
    tap(ui, wait_for, f"cert_{index}")
    ui.wait_text("可信等级：B", wait_for)
    ui.screenshot("41-certificate-detail")

    before = set(out.glob("*.pdf"))
    tap(ui, wait_for, "cert_print")
    ui.wait_text("打印完成", wait_for, timeout=40)
    printed = wait_for(lambda: sorted(set(out.glob("*.pdf")) - before), what="the cups-pdf output")
    assert len(printed) == 1
    text = pdf_text(printed[0])
    assert "结婚证" in text and MARRIAGE_NO in text
    shutil.copy(printed[0], ui.shots / "certificate.pdf")
    ui.screenshot("42-certificate-printed")

    # the same certificate again in this session: printed, but recorded and shown as a counted reprint
    tap(ui, wait_for, "cert_print")
    ui.wait_text("本次为第 1 次补打", wait_for, timeout=40)
    wait_for(lambda: len(set(out.glob("*.pdf")) - before) == 2, what="the second copy")
    ui.screenshot("43-certificate-reprinted")
    tap(ui, wait_for, "certificates_done")
    ui.wait_screen("rating", wait_for)


def corner_taps(ui, times: int = 5) -> None:
    """The staff gesture: quick taps in the top-left corner of the window (real X clicks)."""
    import os

    window = ui.state()["window"]
    subprocess.run(["xdotool", "mousemove", str(window["left"] + 20), str(window["top"] + 20),
                    "click", "--repeat", str(times), "--delay", "150", "1"],
                   env={**os.environ, "DISPLAY": ui.display}, check=True, timeout=10)


def test_a_stuck_licence_goes_to_staff_who_hand_it_over(start_kiosk, camera_sim, wait_for):
    stuck = {**LICENCE_PRINTER, "settings": {**LICENCE_PRINTER["settings"], "job_timeout_s": 3.0}}
    ui = start_with_camera(start_kiosk, camera_sim, devices__licence_printer=stuck)
    ui.wait_screen("attract", wait_for, timeout=30)
    sims = wait_for(lambda: (lambda s: s if all(k in s for k in ("idcard", "licence_printer")) else None)(
        {k: v for k, v in ui.ask("simulators").items() if k != "ok"}), timeout=30, what="the simulators")
    send_command(sims["licence_printer"]["control"], "set_hang", hang=True)   # the job never completes
    send_command(sims["idcard"]["control"], "place_card", identity="zhang")
    pass_face_check(ui, wait_for)
    tap(ui, wait_for, "tile_certificates")
    ui.wait_text("您的电子证照", wait_for)
    tap(ui, wait_for, "cert_0")
    tap(ui, wait_for, "cert_print")
    failure = wait_for(lambda: (lambda t: t if t and "正在" not in t else None)(ui.find("certificates_status").get("text", "")),
                       timeout=40, what="the print attempt over")
    assert "打印完成" not in failure
    # a second try by the citizen is refused: the first may have come out, staff decide
    tap(ui, wait_for, "cert_print")
    ui.wait_text("请联系现场工作人员处理", wait_for, timeout=20)
    ui.screenshot("44-certificate-staff-needed")
    send_command(sims["licence_printer"]["control"], "set_hang", hang=False)

    corner_taps(ui)
    ui.wait_screen("staff", wait_for)
    ui.wait_text("请输入维护密码", wait_for)
    for digit in "000000":
        tap(ui, wait_for, f"staff_key_{digit}")
    tap(ui, wait_for, "staff_pin_ok")
    ui.wait_text("密码错误", wait_for)
    for digit in "246810":
        tap(ui, wait_for, f"staff_key_{digit}")
    tap(ui, wait_for, "staff_pin_ok")
    line = ui.wait_text("电子证照 居民身份证", wait_for).split("\n")
    assert line[0].startswith("证照") and "已补打 0 次" in line[1]
    texts = " ".join(ui.texts())
    assert "340302195803172018" not in texts and "张明华" not in texts
    ui.screenshot("45-staff-unfinished")
    tap(ui, wait_for, "staff_handed_over_0")
    ui.wait_text("没有未完成的打印任务", wait_for)
    ui.wait_text("已处理并记录", wait_for)
    tap(ui, wait_for, "staff_back")
    ui.wait_screen("menu", wait_for)
