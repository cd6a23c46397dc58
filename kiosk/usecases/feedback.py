"""Complaints and questions (投诉/咨询) from the kiosk, anonymous or with the identified citizen's session:

    kind (complaint | consultation) + text (pinyin keyboard) [+ the service it is about] ──send──► the platform
    answers "received" with a reference ──► receipt with the reference and its QR ──► progress by reference

Reachable from the menu and after a bad rating (the rated service goes with it). The text is personal data: it is
sent once (an Idempotency-Key per text in the session's scratch: a retry never files twice), never logged or
audited, and forgotten at session end. The reference (``FB`` + date + 6 digits + check digit, see
service_platform/routes/feedback.py) is queried like an application number (:meth:`FeedbackFlow.status_now`;
``KioskCore.query_progress`` sends references of this shape here).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from kiosk.errors import KioskError
from kiosk.platform_client import Application
from kiosk.usecases.booking import Callback, CoreFlow

KINDS = ("complaint", "consultation")
KIND_ZH = {"complaint": "投诉", "consultation": "咨询"}
MAX_TEXT = 500


class FeedbackTextInvalid(KioskError):
    code = "feedback_text_invalid"
    translation_key = "feedback.error.text"


def is_reference(value: str) -> bool:
    """The shape of a feedback reference: ``FB`` + 14 digits + Luhn check digit (17 characters)."""
    value = value.strip().upper()
    if len(value) != 17 or not value.startswith("FB") or not value[2:].isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(value[2:16])):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str(-total % 10) == value[16]


@dataclass(frozen=True)
class Filed:
    """A complaint or question the platform received, and its receipt (``print_error`` when printing failed: the
    reference is on screen)."""

    reference: str
    kind: str
    message: str
    answer_due: str
    print_result: Any = None
    print_error: BaseException | None = None


class FeedbackFlow(CoreFlow):
    name = "feedback"

    def _token(self) -> str | None:
        """The citizen's token when someone is identified (the feedback is linked to the session), else None."""
        if not self.identified:
            return None
        try:
            return self.token()
        except KioskError:
            return None

    def send_now(self, kind: str, text: str, service_code: str | None = None) -> Filed:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        text = text.strip()
        if not text or len(text) > MAX_TEXT:
            raise FeedbackTextInvalid("the text is empty or too long", limit=MAX_TEXT)
        digest = hashlib.sha256(f"{kind}\n{service_code}\n{text}".encode()).hexdigest()[:16]
        key = self.key("send", digest)
        token = self._token()
        got = self.ctx.platform.submit_feedback(kind, text, service_code, token, idempotency_key=key)
        reference = str(got["reference"])
        self.audit("feedback_filed", kind=kind, reference=reference, with_session=token is not None)
        language = self.ctx.translator.language
        message = got.get("message_zh") if language == "zh_CN" else got.get("message_en")
        due = str(got.get("answer_due", ""))[:10]
        printed, failed = None, None
        try:
            printed = self.ctx.print_service.print_receipt(
                "feedback_receipt", summary=f"投诉咨询回执 {reference}",
                feedback=self.receipt_context(reference, kind, service_code, str(got.get("created_at", "")), due))
            self.printed("print_feedback", printed)
        except Exception as exc:  # noqa: BLE001 - the reference is on screen; the receipt is a copy of it
            failed = exc
            self.audit("print_failed", action="print_feedback", code=getattr(exc, "code", type(exc).__name__))
        return Filed(reference, kind, str(message or ""), due, printed, failed)

    def send(self, kind: str, text: str, service_code: str | None = None, on_result: Callback = None,
             on_error: Callback = None) -> None:
        self.run("feedback_send", self.send_now, kind, text, service_code, on_result=on_result, on_error=on_error)

    def receipt_context(self, reference: str, kind: str, service_code: str | None, created_at: str,
                        answer_due: str) -> dict[str, Any]:
        service_name = ""
        if service_code:
            try:
                service_name = self.ctx.guide_cache.detail(service_code).summary.name
            except Exception:  # noqa: BLE001 - the name is a courtesy on the receipt
                service_name = ""
        return {"reference": reference, "kind": kind, "kind_text": KIND_ZH[kind], "service_name": service_name,
                "created_at": created_at[:16].replace("T", " "), "answer_due": answer_due,
                "verify_url": self.ctx.public_urls.feedback(reference)}

    def status_now(self, reference: str) -> Application:
        """The state of a complaint or question, as a state-only progress (what the progress screen shows)."""
        got = self.ctx.platform.feedback_status(reference.strip().upper())
        language = self.ctx.translator.language
        text = got.get("status_text_zh") if language == "zh_CN" else got.get("status_text_en")
        return Application(number=got["reference"], service_code="", service_name=KIND_ZH.get(got.get("kind", ""), ""),
                           status=got["status"], status_text=str(text or got["status"]), applicant_masked="",
                           submitted_at="", department="", promised_date=None, updated_at=got.get("updated_at", ""),
                           status_only=True)
