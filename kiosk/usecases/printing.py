"""Print receipts from templates on the receipt printer."""
from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from drivers.receipt_printer.base import PrintResult, ReceiptPrinter
from kiosk import receipts
from kiosk.errors import DeviceUnavailable
from kiosk.platform_client import Application, ServiceDetail


def new_job_id() -> str:
    return "PJ" + datetime.now().strftime("%Y%m%d%H%M%S") + secrets.token_hex(3)


def _common(kiosk_id: str, kiosk_name: str) -> dict[str, Any]:
    return {"kiosk_id": kiosk_id, "kiosk_name": kiosk_name, "printed_at": datetime.now().strftime("%Y-%m-%d %H:%M")}


def print_service_notice(printer: ReceiptPrinter | None, detail: ServiceDetail, guide_url: str, kiosk_id: str,
                         kiosk_name: str) -> PrintResult:
    if printer is None:
        raise DeviceUnavailable("no receipt printer configured")
    receipt = receipts.render("service_notice", job_id=new_job_id(), service=detail, guide_url=guide_url,
                              **_common(kiosk_id, kiosk_name))
    return printer.print_receipt(receipt)


def print_progress(printer: ReceiptPrinter | None, application: Application, status_text: dict[str, str],
                   kiosk_id: str, kiosk_name: str) -> PrintResult:
    if printer is None:
        raise DeviceUnavailable("no receipt printer configured")
    view = {
        "number": application.number, "service_name": application.service_name,
        "applicant_masked": application.applicant_masked, "department": application.department,
        "submitted_at": application.submitted_at[:16].replace("T", " "),
        "status_text": status_text.get(application.status, application.status_text),
        "promised_date": application.promised_date,
        "timeline": [{"at": s.at[:16].replace("T", " "), "status_text": status_text.get(s.status, s.status),
                      "department": s.department, "note": s.note} for s in application.timeline],
    }
    receipt = receipts.render("progress", job_id=new_job_id(), application=view, **_common(kiosk_id, kiosk_name))
    return printer.print_receipt(receipt)
