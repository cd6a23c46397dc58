"""Online application (在线申报) at the kiosk, as a state machine the screens follow:

    PICK ──choose──► NOTICE ──accept──► FORM ──form ok──► ATTACH ──► [CAPTURE] ──► REVIEW ──submit──► RESULT
     (search or          (一次性告知       (pre-filled;      (e-certificates   (camera pages,  (platform's      (number, or the
      life event)         of materials)     citizen edits)    with one tap)     only if one)    pre-review)      outbox reference)

After RESULT: a printed receipt (``transaction_receipt``) and the rating request. Every platform call runs on the
core's workers and answers through the dispatcher; the blocking parts are plain methods, so tests can drive them.

Submission goes through the encrypted :class:`~kiosk.outbox.Outbox`: journaled with its Idempotency-Key first, then
sent; if the platform is unreachable the citizen gets the outbox reference and is told it will be submitted — the
background drain sends it later with the same key. Everything the citizen entered is dropped at session end.
"""
from __future__ import annotations

import datetime as dt
import enum
import logging
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from kiosk.errors import (CitizenSessionExpired, DeviceUnavailable, InvalidSessionState, KioskError,
                          PlatformUnavailable, error_code)
from kiosk import forms, page_capture
from kiosk.context import UseCaseContext
from kiosk.forms import FieldError, Form, from_problems, validate
from kiosk.outbox import DrainReport, Outbox, OutboxItem
from kiosk.platform_client import (ECertificate, FiledApplication, FormPrefill, Material, MaterialRef, PlatformClient,
                                   PreReview, PreReviewFailed, ServiceDetail, ServiceSummary)
from kiosk.session import RatingTarget

log = logging.getLogger(__name__)
Callback = Callable[[Any], None] | None


class Step(str, enum.Enum):
    PICK = "pick"
    NOTICE = "notice"
    FORM = "form"
    ATTACH = "attach"
    CAPTURE = "capture"
    REVIEW = "review"
    RESULT = "result"


class NotApplicableOnline(KioskError):
    """The service has no online form: the citizen is sent to its guide (print the one-time notice)."""

    code = "not_applicable_online"
    translation_key = "apply.error.not_online"


class FormIncomplete(KioskError):
    """The form still has errors (shown next to the fields)."""

    code = "form_incomplete"
    translation_key = "apply.error.form_incomplete"


@dataclass
class MaterialSlot:
    """One material of the guide and how the citizen provides it."""

    material: Material
    candidates: list[ECertificate] = field(default_factory=list)  # usable e-certificates of the right type
    e_certificate_id: str | None = None
    upload_ids: list[str] = field(default_factory=list)
    defer: bool = False

    @property
    def index(self) -> int:
        return self.material.index

    @property
    def automatic(self) -> bool:
        """Nothing to attach: the form is this material, or the identity check covers it."""
        return self.material.satisfied_by is not None

    @property
    def provided(self) -> bool:
        return self.automatic or bool(self.e_certificate_id or self.upload_ids or self.defer)

    def ref(self) -> MaterialRef | None:
        if self.automatic:
            return None
        if self.e_certificate_id:
            return MaterialRef(self.index, e_certificate_id=self.e_certificate_id)
        if self.upload_ids:
            return MaterialRef(self.index, upload_ids=tuple(self.upload_ids))
        if self.defer:
            return MaterialRef(self.index, defer=True)
        return None

    def how(self) -> str:
        """How it is provided, as a key under apply.material_form (receipt and review screen)."""
        if self.material.satisfied_by:
            return self.material.satisfied_by
        if self.e_certificate_id:
            return "e_certificate"
        if self.upload_ids:
            return "upload"
        return "deferred" if self.defer else "missing"


@dataclass(frozen=True)
class Outcome:
    """What happened to a submission: ``submitted`` (number known) or ``queued`` (in the outbox, will be
    submitted; the reference is what the citizen keeps)."""

    status: str
    reference: str
    number: str | None = None
    result: dict[str, Any] | None = None


MATERIAL_FORMS = {"e_certificate": "电子证照", "upload": "拍照上传", "identity": "身份核验", "form": "在线填写",
                  "deferred": "容缺后补", "missing": "未提供"}


def filed_result(filed: FiledApplication) -> dict[str, Any]:
    """What the outbox keeps of a filed application (no personal data beyond the masked name)."""
    p = filed.progress
    return {"number": filed.number, "status": p.status, "service_name": p.service_name,
            "applicant_masked": p.applicant_masked, "department": p.department, "submitted_at": p.submitted_at,
            "promised_date": p.promised_date, "outstanding": filed.outstanding,
            "supplement_due": filed.supplement_due,
            "materials": [{"index": m.index, "name": m.name, "status": m.status, "source": m.source}
                          for m in filed.materials],
            # fees to pay now (the result screen offers the payment screen for them)
            "payment_orders": [{"order_no": o.order_no, "amount_fen": o.amount_fen} for o in filed.payment_orders
                               if o.status == "pending"]}


def application_sender(platform: PlatformClient) -> Callable[[dict[str, Any], str, dt.datetime], dict[str, Any]]:
    """The outbox's sender for ``application`` items."""

    def send(payload: dict[str, Any], key: str, captured_at: dt.datetime) -> dict[str, Any]:
        materials = [MaterialRef(m["index"], e_certificate_id=m.get("e_certificate_id"),
                                 upload_ids=tuple(m.get("upload_ids") or ()), defer=bool(m.get("defer")))
                     for m in payload["materials"]]
        filed = platform.file_application(payload["token"], payload["service_code"], payload["form"], materials,
                                          bool(payload.get("commitment")), idempotency_key=key,
                                          captured_at=captured_at)
        return filed_result(filed)
    return send


def rating_sender(platform: PlatformClient) -> Callable[[dict[str, Any], str, dt.datetime], dict[str, Any]]:
    """The outbox's sender for ``rating`` items: linked to the citizen session while it lives, anonymous after."""

    def send(payload: dict[str, Any], key: str, captured_at: dt.datetime) -> dict[str, Any]:
        args = (payload["target_type"], payload["target_id"], int(payload["stars"]), payload.get("tags") or [],
                payload.get("comment"))
        try:
            saved = platform.submit_rating(*args, payload.get("token") or None, key)
        except CitizenSessionExpired:
            saved = platform.submit_rating(*args, None, key)
        return {"id": saved.get("id") if isinstance(saved, dict) else None}
    return send


def register_senders(outbox: Outbox, platform: PlatformClient) -> None:
    outbox.register("application", application_sender(platform))
    outbox.register("rating", rating_sender(platform))


class ApplyFlow:
    """The application flow for the citizen being served. ``ctx`` is the kiosk as a use-case sees it
    (:class:`~kiosk.context.UseCaseContext`: platform, session, workers, devices, print service, outbox). Callbacks
    come through the core's dispatcher."""

    def __init__(self, ctx: "UseCaseContext", outbox: Outbox) -> None:
        self.ctx = ctx
        self.outbox = outbox
        register_senders(outbox, ctx.platform)
        self._lock = threading.RLock()
        self._generation = 0
        self._details: dict[str, ServiceDetail] = {}  # public catalogue data: kept across sessions
        self._clear()
        ctx.session.subscribe(lambda name, _payload: self.reset() if name == "ended" else None)
        ctx.subscribe(self._on_core_event)

    def _on_core_event(self, name: str, payload: dict[str, Any]) -> None:
        """The platform is reachable again: drain the outbox now rather than at the next round."""
        drainer = getattr(self.ctx, "outbox_drainer", None)
        if name == "availability" and payload["availability"].platform and drainer is not None:
            if self.outbox.pending_count():
                drainer.wake()

    # ------------------------------------------------------------------------------------------ state
    def _clear(self) -> None:
        self.step = Step.PICK
        self.detail: ServiceDetail | None = None
        self.form: Form | None = None
        self.slots: list[MaterialSlot] = []
        self.certificates: list[ECertificate] = []
        self.field_errors: list[FieldError] = []
        self.review: PreReview | None = None
        self.problems: list[Any] = []
        self.outcome: Outcome | None = None
        self.item: OutboxItem | None = None
        self._upload_keys: dict[tuple[int, int], str] = {}

    def reset(self) -> None:
        """Forget everything of the citizen (session end); late worker results of the old session are dropped."""
        with self._lock:
            self._generation += 1
            if self.form is not None:
                self.form.clear()
            self._clear()

    def _run(self, action: str, fn: Callable[[], Any], apply: Callable[[Any], Any] | None,
             on_result: Callback, on_error: Callback) -> None:
        generation = self._generation
        session_id = self.ctx.session.data.id

        def done(value: Any) -> None:
            if generation != self._generation:
                return  # the session ended meanwhile: show nothing of it
            shown = apply(value) if apply else value
            if on_result:
                on_result(shown)

        def failed(exc: BaseException) -> None:
            if generation != self._generation:
                return
            self.ctx.audit("action_failed", session_id, action=action, code=error_code(exc))
            if isinstance(exc, PlatformUnavailable):
                self.ctx.check_health()
            if on_error:
                on_error(exc)

        self.ctx.workers.submit(fn, on_result=done, on_error=failed)

    def _token(self) -> str:
        """The citizen session token (blocking; see :meth:`KioskCore.citizen_token`)."""
        try:
            return self.ctx.citizen_token()
        except InvalidSessionState:
            raise InvalidSessionState("applying needs an identified citizen") from None

    def _detail(self, code: str) -> ServiceDetail:
        detail = self._details.get(code)
        if detail is None:
            detail = self._details[code] = self.ctx.platform.service_detail(code)
        return detail

    # ------------------------------------------------------------------------------------------ PICK
    def start(self) -> None:
        """Open the flow (from the menu): nothing chosen yet."""
        self.ctx.session.begin_service()
        with self._lock:
            if self.form is not None:
                self.form.clear()
            self._clear()

    def search(self, query: str = "", category: str = "", on_result: Callback = None,
               on_error: Callback = None) -> None:
        """Services matching ``query`` (name, pinyin initials) or a life-event ``category`` that can be filed
        online here."""
        self.ctx.touch()

        def find() -> list[ServiceSummary]:
            found = self.ctx.platform.search_services(query, category, limit=50)
            return [s for s in found if self._detail(s.code).form_schema is not None]
        self._run("apply_search", find, None, on_result, on_error)

    def categories(self, on_result: Callback = None, on_error: Callback = None) -> None:
        self._run("apply_categories", self.ctx.platform.categories, None, on_result, on_error)

    def choose(self, code: str, on_result: Callback = None, on_error: Callback = None) -> None:
        """Load the guide, the pre-filled form and the citizen's e-certificates; then show the one-time notice."""
        self.ctx.session.begin_service()

        def load() -> tuple[ServiceDetail, FormPrefill, list[ECertificate]]:
            detail = self._detail(code)
            if detail.form_schema is None:
                raise NotApplicableOnline(code)
            token = self._token()
            return detail, self.ctx.platform.form_prefill(token, code), self.ctx.platform.my_e_certificates(token)

        self._run("apply_choose", load, self._loaded, on_result, on_error)

    def _loaded(self, loaded: tuple[ServiceDetail, FormPrefill, list[ECertificate]]) -> "ApplyFlow":
        detail, prefill, certs = loaded
        assert detail.form_schema is not None
        with self._lock:
            self._clear()
            self.detail = detail
            self.form = Form.from_schema(detail.form_schema)
            self.form.apply_prefill(prefill.form, prefill.sources)
            self.certificates = [c for c in certs if c.usable_as_material]
            suggested = {m.index: m.e_certificate_id for m in prefill.materials if m.e_certificate_id}
            for m in detail.materials:
                candidates = [c for c in self.certificates if m.e_cert_type and m.e_cert_type in (c.type_code,
                                                                                                     c.type_name)]
                suggestion = suggested.get(m.index)
                if suggestion and all(c.id != suggestion for c in candidates):
                    candidates += [c for c in self.certificates if c.id == suggestion]
                candidates.sort(key=lambda c: c.id != suggestion)  # the platform's suggestion first
                self.slots.append(MaterialSlot(m, candidates))
            self.step = Step.NOTICE
        return self

    # ------------------------------------------------------------------------------------------ NOTICE, FORM
    def accept_notice(self) -> None:
        self._need(Step.NOTICE, Step.FORM, Step.ATTACH, Step.REVIEW)
        self.ctx.touch()
        self.step = Step.FORM

    def _need(self, *steps: Step) -> None:
        if self.step not in steps or self.form is None:
            raise InvalidSessionState(f"apply: {self.step.value} does not allow this")

    def set_field(self, pointer: str, value: Any, *, typed: bool = True) -> list[FieldError]:
        """Set one field (``typed``: from the keyboard's text; else the value itself, e.g. a choice). Returns the
        problems of that field now (empty when fine)."""
        self._need(Step.FORM, Step.REVIEW)
        assert self.form is not None
        self.ctx.touch()
        problems = forms.set_field(self.form, pointer, value, typed)
        self.field_errors = [e for e in self.field_errors if e.pointer != pointer]
        return problems

    def finish_form(self) -> list[FieldError]:
        """Check the whole form: the errors (shown next to the fields), or none and the flow goes on."""
        self._need(Step.FORM, Step.REVIEW)
        assert self.form is not None
        self.ctx.touch()
        self.field_errors = validate(self.form)
        if not self.field_errors:
            self.step = Step.ATTACH
        return self.field_errors

    # ------------------------------------------------------------------------------------------ ATTACH, CAPTURE
    @property
    def open_slots(self) -> list[MaterialSlot]:
        """Materials the citizen provides (those the form or the identity check covers are left out)."""
        return [s for s in self.slots if not s.automatic]

    def attach_suggested(self) -> int:
        """One tap: attach the best e-certificate to every material that one can replace. Returns how many."""
        self.ctx.touch()
        count = 0
        for slot in self.open_slots:
            if slot.candidates and not slot.e_certificate_id:
                slot.e_certificate_id, slot.defer = slot.candidates[0].id, False
                count += 1
        return count

    def attach(self, index: int, cert_id: str | None = None) -> None:
        slot = self.slot(index)
        ids = [c.id for c in slot.candidates]
        if cert_id is None and ids:
            cert_id = ids[0]
        if cert_id not in ids:
            raise ValueError(f"material {index}: no usable e-certificate {cert_id}")
        self.ctx.touch()
        slot.e_certificate_id, slot.defer = cert_id, False

    def detach(self, index: int) -> None:
        slot = self.slot(index)
        self.ctx.touch()
        slot.e_certificate_id, slot.upload_ids, slot.defer = None, [], False

    def defer(self, index: int, defer: bool = True) -> None:
        """容缺受理: supply this material later (only materials the guide marks deferrable)."""
        slot = self.slot(index)
        if defer and not slot.material.deferrable:
            raise ValueError(f"material {index} cannot be supplied later")
        self.ctx.touch()
        slot.defer = defer

    def slot(self, index: int) -> MaterialSlot:
        for slot in self.slots:
            if slot.index == index:
                return slot
        raise KeyError(index)

    @property
    def camera_available(self) -> bool:
        """Whether pages can be photographed here (document camera, else the face camera: kiosk/page_capture.py)."""
        return page_capture.page_camera(self.ctx.devices.get) is not None

    def next_after_attach(self) -> Step:
        """CAPTURE when a camera is configured and a material still lacks something; otherwise straight to review."""
        self.ctx.touch()
        wanting = [s for s in self.open_slots if not s.provided]
        self.step = Step.CAPTURE if self.camera_available and wanting else Step.REVIEW
        return self.step

    def capture_page(self, index: int, on_result: Callback = None, on_error: Callback = None) -> None:
        """Photograph a paper page for material ``index`` with the kiosk camera and upload it (Idempotency-Key per
        page, so a retry never uploads twice)."""
        if not self.camera_available:
            if on_error:
                self.ctx.dispatch(lambda: on_error(DeviceUnavailable("no camera configured")))
            return
        slot = self.slot(index)
        page_no = len(slot.upload_ids)
        key = self._upload_keys.setdefault((index, page_no), str(uuid.uuid4()))

        def shoot() -> str:
            jpeg = page_capture.capture_page(self.ctx.devices.get)   # flattened when a document camera takes it
            upload = self.ctx.platform.upload_page(self._token(), jpeg, "image/jpeg",
                                                    idempotency_key=key)
            return upload.id

        def added(upload_id: str) -> MaterialSlot:
            slot.upload_ids.append(upload_id)
            slot.defer = False
            return slot
        self.ctx.touch()
        self._run("apply_capture", shoot, added, on_result, on_error)

    # ------------------------------------------------------------------------------------------ REVIEW
    def _materials(self) -> list[MaterialRef]:
        return [ref for ref in (s.ref() for s in self.slots) if ref is not None]

    def pre_review(self, on_result: Callback = None, on_error: Callback = None) -> None:
        """Ask the platform for every missing or wrong item at once (一次性告知); creates nothing."""
        if self.detail is None or self.form is None:
            raise InvalidSessionState("apply: nothing to review")
        self.ctx.touch()
        code, doc, refs = self.detail.summary.code, self.form.to_json(), self._materials()
        commitment = any(r.defer for r in refs)

        def ask() -> PreReview:
            return self.ctx.platform.pre_review(self._token(), code, doc, refs, commitment)
        self._run("apply_pre_review", ask, self._reviewed, on_result, on_error)

    def _reviewed(self, review: PreReview) -> PreReview:
        self.review = review
        self.problems = list(review.problems)
        self.field_errors = from_problems(review.problems)
        if self.step is not Step.FORM:  # asked from the form ("check now"): the citizen stays on it
            self.step = Step.REVIEW
        return review

    def edit_form(self) -> None:
        """Back to the form (from materials or review) to correct something."""
        self._need(Step.FORM, Step.ATTACH, Step.CAPTURE, Step.REVIEW)
        self.ctx.touch()
        self.step = Step.FORM

    def to_capture(self) -> None:
        """To the document capture step (only with a camera)."""
        self._need(Step.ATTACH, Step.CAPTURE, Step.REVIEW)
        if not self.camera_available:
            raise DeviceUnavailable("no camera configured")
        self.ctx.touch()
        self.step = Step.CAPTURE

    def to_review(self) -> None:
        self._need(Step.ATTACH, Step.CAPTURE, Step.REVIEW)
        self.ctx.touch()
        self.step = Step.REVIEW

    # ------------------------------------------------------------------------------------------ SUBMIT
    def submit(self, on_result: Callback = None, on_error: Callback = None) -> None:
        """Journal the application in the outbox (with its Idempotency-Key), then send it. ``on_result`` gets an
        :class:`Outcome`: ``submitted`` with the number, or ``queued`` with the outbox reference when the platform
        is unreachable. A refusal (:class:`PreReviewFailed`) goes to ``on_error`` and back to review."""
        if self.detail is None or self.form is None:
            raise InvalidSessionState("apply: nothing to submit")
        self.ctx.touch()
        refs = self._materials()
        payload = {"token": "", "service_code": self.detail.summary.code, "form": self.form.to_json(),
                   "materials": [r.to_json() for r in refs], "commitment": any(r.defer for r in refs)}
        session_id = self.ctx.session.data.id
        existing = self.item  # a retry of the same confirmed request keeps its outbox row (and key)

        def send() -> Outcome:
            item = existing
            if item is None or item.state == "rejected":
                self.ctx.require_storage("application")   # data disk full: StorageFull, nothing journaled
                payload["token"] = self._token()
                with self.ctx.storage.writing("outbox"):
                    item = self.outbox.put("application", payload)
            self.item = item
            try:
                done = self.outbox.attempt(item.id)
            except PlatformUnavailable:
                self.ctx.audit("application_queued", session_id, service=payload["service_code"],
                                 reference=item.reference)
                return Outcome("queued", item.reference)
            self.item = done
            result = done.result or {}
            self.ctx.audit("application_submitted", session_id, service=payload["service_code"],
                             number=result.get("number", ""), reference=done.reference)
            return Outcome("submitted", done.reference, result.get("number"), result)

        def failed(exc: BaseException) -> None:
            if isinstance(exc, PreReviewFailed):
                self._reviewed(PreReview(False, exc.problems, exc.materials, None))
                self.item = None
            if on_error:
                on_error(exc)

        def done(outcome: Outcome) -> Outcome:
            self.outcome = outcome
            self.step = Step.RESULT
            return outcome
        self._run("apply_submit", send, done, on_result, failed)

    def rate(self, target_type: str, target_id: str, stars: int, tags: list[str], comment: str | None,
             token: str | None, idempotency_key: str) -> dict[str, Any]:
        """Blocking: a rating through the outbox (journaled with its key, then sent). Returns the platform's answer
        with ``queued: False``, or ``{"queued": True, "reference": ...}`` when the platform is unreachable."""
        existing = self.outbox.by_key(idempotency_key)
        with self.ctx.storage.writing("outbox"):
            item = existing if existing is not None and existing.kind == "rating" else self.outbox.put(
                "rating", {"target_type": target_type, "target_id": target_id, "stars": stars, "tags": list(tags),
                           "comment": comment, "token": token or ""}, idempotency_key=idempotency_key)
        try:
            done = self.outbox.attempt(item.id)
        except PlatformUnavailable:
            return {"queued": True, "reference": item.reference}
        return {**(done.result or {}), "queued": False, "reference": done.reference}

    def drained(self, report: DrainReport) -> None:
        """From the outbox drainer: queued requests settled (for the audit journal; their citizens have left)."""
        for item in report.submitted:
            self.ctx.audit("outbox_submitted", kind=item.kind, reference=item.reference,
                             number=(item.result or {}).get("number", ""))
        for item in report.rejected:
            self.ctx.audit("outbox_rejected", kind=item.kind, reference=item.reference, code=item.last_error or "")

    # ------------------------------------------------------------------------------------------ RESULT
    def receipt_context(self) -> dict[str, Any]:
        """The ``txn`` of the transaction_receipt template (masked applicant only)."""
        if self.outcome is None or self.outcome.status != "submitted" or self.detail is None:
            raise InvalidSessionState("apply: nothing was submitted")
        result = self.outcome.result or {}
        citizen = self.ctx.session.citizen
        slots = {s.index: s for s in self.slots}
        materials = []
        for m in result.get("materials") or []:
            if m.get("status") == "outstanding":
                how = "deferred"
            elif m.get("status") != "provided":
                continue
            else:
                how = m.get("source") or (slots[m["index"]].how() if m.get("index") in slots else "missing")
            materials.append({"name": m["name"], "form": MATERIAL_FORMS.get(how, how)})
        pickup = ""
        if self.form is not None and "/pickup" in {f.pointer for f in self.form.fields}:
            pickup = self.form.display("/pickup", "zh_CN")
        return {"number": self.outcome.number, "service_name": result.get("service_name") or self.detail.summary.name,
                "applicant_masked": result.get("applicant_masked") or (citizen.name_masked if citizen else ""),
                "id_masked": citizen.id_masked if citizen else "", "department": result.get("department") or
                self.detail.summary.department, "accepted_at": str(result.get("submitted_at", ""))[:16].replace(
                    "T", " "), "promised_date": result.get("promised_date"), "materials": materials,
                "fee_fen": self.detail.fee_fen, "pickup": pickup,
                "verify_url": self.ctx.public_urls.application(self.outcome.number)}

    def rating_target(self) -> RatingTarget:
        if self.outcome is not None and self.outcome.number:
            return RatingTarget("application", self.outcome.number, "apply")
        code = self.detail.summary.code if self.detail else ""
        return RatingTarget("service", code, "apply")

    def print_receipt(self, on_result: Callback = None, on_error: Callback = None) -> None:
        """Print the 业务受理回执 (number as QR); then the rating is asked for."""
        txn = self.receipt_context()
        target = self.rating_target()
        ctx = self.ctx

        def printed(result: Any) -> Any:
            ctx.audit("printed", ctx.session.data.id, action="print_apply", job=result.job_id,
                        bytes=result.bytes_sent)
            if ctx.session.active:
                ctx.complete_action(target)
            return result
        self._run("print_apply", lambda: ctx.print_service.print_receipt(
            "transaction_receipt", summary=f"业务受理回执 {txn['number']}", txn=txn), printed, on_result, on_error)

    def finish(self) -> None:
        """Done without (another) receipt: ask for the rating."""
        if self.ctx.session.active:
            self.ctx.complete_action(self.rating_target())
