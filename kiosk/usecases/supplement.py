"""补正 (supplementing an application) at the kiosk: "最多跑一次" for an application waiting for materials.

    my applications ──► waiting (supplement_required, or accepted with deferred 容缺 materials)
        └─ open one ──► the one-time list of what is missing (material names, the department's note, the deadline)
              ├─ attach an e-certificate (one tap)      ┐
              ├─ photograph pages (kiosk/page_capture)  ├─► submit (through the outbox) ──► result + timeline
              └─ fill the form fields the department    ┘        └─► printed 补正回执 (number or outbox reference)
                  asked for (pre-filled where the apply flow pre-fills: card, e-certificates)

The platform moves the application on (``in_review``) once nothing is outstanding. Submission goes through the
encrypted :class:`~kiosk.outbox.Outbox` (kind ``supplement``): journaled with its Idempotency-Key first, then sent; if
the platform is unreachable the citizen gets the outbox reference and the drainer sends it later with the same key.

:class:`SupplementFlow` is ``core.supplement``. Its state lives in the session's scratch (wiped at session end). The
blocking steps are ``*_now`` methods (tests drive them without Kivy); the others run them on the core's workers.
"""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from kiosk import forms, page_capture
from kiosk.errors import InvalidSessionState, KioskError, PlatformUnavailable
from kiosk.forms import FieldError, Form, from_problems, validate
from kiosk.outbox import Outbox
from kiosk.platform_client import (FiledApplication, MaterialRef, OutstandingField, PlatformClient,
                                   PreReviewFailed, Problem, ProgressStep)
from kiosk.session import RatingTarget
from kiosk.usecases.apply import MATERIAL_FORMS, MaterialSlot, Outcome
from kiosk.usecases.booking import Callback, CoreFlow, rejection_text

if TYPE_CHECKING:
    from kiosk.context import UseCaseContext

log = logging.getLogger(__name__)

#: statuses in which an application may still have outstanding materials (容缺受理 leaves it ``accepted``)
SUPPLEMENTABLE = ("supplement_required", "accepted", "received", "in_review")


class NothingToSupplement(KioskError):
    """The application has no outstanding material (someone supplied it meanwhile, or it is closed)."""

    code = "nothing_outstanding"
    translation_key = "supplement.error.nothing_outstanding"


class SupplementIncomplete(KioskError):
    """Nothing attached or filled in yet: at least one missing material or asked-for field must be provided."""

    code = "supplement_incomplete"
    translation_key = "supplement.error.incomplete"


class SupplementFieldsInvalid(KioskError):
    """A filled-in field is not valid for the form (the errors are shown next to the fields)."""

    code = "supplement_fields_invalid"
    translation_key = "supplement.error.fields_invalid"


@dataclass(frozen=True)
class SupplementCase:
    """An application waiting for materials, as the one-time list (一次性告知) shows it."""

    number: str
    service_code: str
    service_name: str
    status: str
    department: str
    due: str | None                     # supplement deadline (容缺), if the platform set one
    reason: str                         # the department's last note on what is wrong ("" if none)
    missing: list[tuple[int, str]]      # (material index, name)
    timeline: list[ProgressStep] = field(default_factory=list)
    fields: list[OutstandingField] = field(default_factory=list)   # form fields to fill in or correct

    @property
    def to_supply(self) -> int:
        """How many items the department asked for: materials and form fields."""
        return len(self.missing) + len(self.fields)


@dataclass
class SupplementState:
    """What the citizen is doing now (in the session scratch: gone with the session)."""

    case: SupplementCase | None = None
    slots: list[MaterialSlot] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    outcome: Outcome | None = None
    item_id: str | None = None          # outbox row of the confirmed request (a retry keeps its key)
    upload_keys: dict[tuple[int, int], str] = field(default_factory=dict)
    form: Form | None = None            # the asked-for fields only (None when none were asked for)
    field_errors: list[FieldError] = field(default_factory=list)


def case_of(filed: FiledApplication) -> SupplementCase:
    p = filed.progress
    notes = [s.note for s in p.timeline if s.status == "supplement_required" and s.note]
    names = {m.index: m.name for m in filed.materials}
    return SupplementCase(number=filed.number, service_code=p.service_code, service_name=p.service_name,
                          status=p.status, department=p.department, due=filed.supplement_due,
                          reason=notes[-1] if notes else "",
                          missing=[(i, names.get(i, f"#{i}")) for i in filed.outstanding], timeline=list(p.timeline),
                          fields=list(filed.outstanding_fields))


def fields_form(schema: dict[str, Any], names: list[str]) -> Form:
    """The part of the service's form the department asked for: those top-level fields, all required."""
    props = schema.get("properties") or {}
    part = {**{k: v for k, v in schema.items() if k.startswith("$")}, "type": "object",
            "properties": {n: props[n] for n in names if n in props},
            "required": [n for n in names if n in props], "additionalProperties": False}
    return Form.from_schema(part)


def filled(form: Form) -> dict[str, Any]:
    """The values the citizen has for the asked-for fields (top-level name → value; empty ones left out)."""
    return form.to_json()


def supplement_result(filed: FiledApplication) -> dict[str, Any]:
    """What the outbox keeps of a supplement's answer (nothing personal beyond the masked name)."""
    p = filed.progress
    return {"number": filed.number, "status": p.status, "service_name": p.service_name,
            "applicant_masked": p.applicant_masked, "department": p.department,
            "outstanding": filed.outstanding, "supplement_due": filed.supplement_due,
            "outstanding_fields": [f.name for f in filed.outstanding_fields],
            "materials": [{"index": m.index, "name": m.name, "status": m.status, "source": m.source}
                          for m in filed.materials],
            "timeline": [{"status": s.status, "at": s.at, "department": s.department, "note": s.note}
                         for s in p.timeline]}


def supplement_sender(platform: PlatformClient) -> Callable[[dict[str, Any], str, dt.datetime], dict[str, Any]]:
    """The outbox's sender for ``supplement`` items."""

    def send(payload: dict[str, Any], key: str, captured_at: dt.datetime) -> dict[str, Any]:
        refs = [MaterialRef(m["index"], e_certificate_id=m.get("e_certificate_id"),
                            upload_ids=tuple(m.get("upload_ids") or ())) for m in payload["materials"]]
        filed = platform.supplement_materials(payload["token"], payload["number"], refs,
                                              fields=payload.get("fields") or None, idempotency_key=key,
                                              captured_at=captured_at)
        return supplement_result(filed)
    return send


class SupplementFlow(CoreFlow):
    name = "supplement"

    def __init__(self, ctx: "UseCaseContext", outbox: Outbox | None = None) -> None:
        super().__init__(ctx)
        self.outbox = outbox if outbox is not None else ctx.outbox
        self.outbox.register("supplement", supplement_sender(ctx.platform))

    # --- state --------------------------------------------------------------------------------------------------
    @property
    def state(self) -> SupplementState:
        return self.ctx.session.data.scratch.setdefault("supplement_state", SupplementState())

    @property
    def slots(self) -> list[MaterialSlot]:
        return self.state.slots

    def slot(self, index: int) -> MaterialSlot:
        for slot in self.state.slots:
            if slot.index == index:
                return slot
        raise KeyError(index)

    @property
    def can_capture(self) -> bool:
        """A camera can photograph pages on this kiosk."""
        return page_capture.page_camera(self.ctx.devices.get) is not None

    # --- blocking steps -----------------------------------------------------------------------------------------
    def waiting_now(self) -> list[SupplementCase]:
        """The citizen's applications that wait for materials (each with its one-time list), oldest first."""
        apps = self.with_token(self.ctx.platform.my_applications)
        cases = []
        for app in apps:
            if app.status not in SUPPLEMENTABLE:
                continue
            filed = self.with_token(lambda token, n=app.number: self.ctx.platform.my_application(token, n))
            if filed.outstanding or filed.outstanding_fields:
                cases.append(case_of(filed))
        return cases

    def open_now(self, number: str) -> SupplementCase:
        """Load one application's missing materials with the e-certificates that can stand for them, and the form
        fields asked for: their current values, then pre-filled as the apply flow pre-fills (card, e-certificates)."""
        filed = self.with_token(lambda token: self.ctx.platform.my_application(token, number))
        if not filed.outstanding and not filed.outstanding_fields:
            raise NothingToSupplement(number)
        case = case_of(filed)
        detail = self.ctx.platform.service_detail(case.service_code)
        certs = [c for c in self.with_token(self.ctx.platform.my_e_certificates) if c.usable_as_material]
        by_index = {m.index: m for m in detail.materials}
        state = SupplementState(case=case)
        if case.fields and detail.form_schema is not None:
            state.form = fields_form(detail.form_schema, [f.name for f in case.fields])
            state.form.apply_prefill(filed.form)      # what was filed (the department says what is wrong with it)
            prefill = self.with_token(lambda token: self.ctx.platform.form_prefill(token, case.service_code))
            state.form.apply_prefill(prefill.form, prefill.sources)
        for index, _name in case.missing:
            material = by_index[index]
            candidates = [c for c in certs if material.e_cert_type and material.e_cert_type in (c.type_code,
                                                                                                    c.type_name)]
            state.slots.append(MaterialSlot(material, candidates))
        self.ctx.session.data.scratch["supplement_state"] = state
        self.audit("supplement_opened", number=number, missing=len(case.missing), fields=len(case.fields))
        return case

    @property
    def form(self) -> Form | None:
        """The asked-for fields (None when the department asked for none)."""
        return self.state.form

    def set_field(self, pointer: str, value: Any, *, typed: bool = True) -> list[FieldError]:
        """Set one asked-for field (``typed``: the keyboard's text; else the value itself, e.g. a choice), as the
        apply flow does. Returns that field's problems now (empty when fine)."""
        form = self.state.form
        if form is None:
            raise InvalidSessionState("supplement: no field was asked for")
        self.ctx.touch()
        problems = forms.set_field(form, pointer, value, typed)
        self.state.field_errors = [e for e in self.state.field_errors if e.pointer != pointer] + problems
        return problems

    def attach(self, index: int, cert_id: str | None = None) -> MaterialSlot:
        """Provide material ``index`` with one of the citizen's usable e-certificates (the first by default)."""
        slot = self.slot(index)
        ids = [c.id for c in slot.candidates]
        cert_id = cert_id or (ids[0] if ids else None)
        if cert_id not in ids:
            raise ValueError(f"material {index}: no usable e-certificate {cert_id}")
        self.ctx.touch()
        slot.e_certificate_id, slot.upload_ids = cert_id, []
        return slot

    def detach(self, index: int) -> MaterialSlot:
        slot = self.slot(index)
        self.ctx.touch()
        slot.e_certificate_id, slot.upload_ids = None, []
        return slot

    def capture_now(self, index: int) -> MaterialSlot:
        """Photograph one page for material ``index`` and upload it (one Idempotency-Key per page)."""
        slot = self.slot(index)
        key = self.state.upload_keys.setdefault((index, len(slot.upload_ids)), str(uuid.uuid4()))
        image = page_capture.capture_page(self.ctx.devices.get)
        upload = self.with_token(lambda token: self.ctx.platform.upload_page(token, image, "image/jpeg",
                                                                               idempotency_key=key))
        slot.upload_ids.append(upload.id)
        slot.e_certificate_id = None
        self.audit("supplement_page", number=self.state.case.number if self.state.case else "",
                   pages=len(slot.upload_ids))
        return slot

    def add_upload(self, index: int, upload_id: str) -> MaterialSlot:
        """A page that reached the platform another way (the citizen's phone) provides material ``index``."""
        slot = self.slot(index)
        if upload_id not in slot.upload_ids:
            slot.upload_ids.append(upload_id)
        slot.e_certificate_id = None
        return slot

    def phone_now(self, index: int, on_files: Callback = None, on_end: Callback = None) -> Any:
        """Show a one-time QR for the citizen's phone (blocking: creates the token); photos that arrive provide
        material ``index`` (``on_files(slot)`` through the dispatcher). Returns the watch (``url`` for the QR)."""
        slot = self.slot(index)

        def arrived(files: list[Any]) -> None:
            for f in files:
                self.add_upload(index, f.upload_id)
            self.audit("supplement_phone_page", pages=len(slot.upload_ids))
            if on_files:
                on_files(slot)

        return self.ctx.phone_uploads.start("supplement", arrived, on_end)

    def phone_stop(self, watch: Any) -> None:
        """The citizen is done with the phone: stop polling (on a worker). The link stays open on the platform until
        the citizen session ends: closing it now would delete the photos that arrived before they are submitted."""
        self.run("supplement_phone_stop", lambda: self.ctx.phone_uploads.stop(watch, close=False), service=False)

    def submit_now(self) -> Outcome:
        """Journal the supplement in the outbox, then send it: ``submitted`` with the platform's answer, or
        ``queued`` with the outbox reference when the platform is unreachable. A refusal raises
        :class:`PreReviewFailed` (every problem at once, kept in ``state.problems``)."""
        state = self.state
        if state.case is None:
            raise InvalidSessionState("supplement: nothing opened")
        refs = [r for r in (s.ref() for s in state.slots) if r is not None and not r.defer]
        values = filled(state.form) if state.form is not None else {}
        if not refs and not values:
            raise SupplementIncomplete(state.case.number)
        if values:    # only what was filled in: a field left empty is still outstanding (partly supplemented)
            assert state.form is not None
            state.field_errors = [e for e in validate(state.form) if e.pointer and e.code != "required"]
            if state.field_errors:
                raise SupplementFieldsInvalid(state.case.number)
        item = self.outbox.get(state.item_id) if state.item_id else None
        if item is None or item.state == "rejected":
            self.ctx.require_storage("supplement")
            payload = {"token": self.token(), "number": state.case.number,
                       "materials": [r.to_json() for r in refs], "fields": values}
            with self.ctx.storage.writing("outbox"):
                item = self.outbox.put("supplement", payload)
            state.item_id = item.id
        try:
            done = self.outbox.attempt(item.id)
        except PlatformUnavailable:
            self.audit("supplement_queued", number=state.case.number, reference=item.reference)
            state.outcome = Outcome("queued", item.reference, state.case.number)
            return state.outcome
        except PreReviewFailed as exc:
            state.problems = list(exc.problems)
            state.field_errors = from_problems(exc.problems)
            state.item_id = None
            raise
        result = done.result or {}
        state.problems, state.field_errors = [], []
        state.outcome = Outcome("submitted", done.reference, result.get("number"), result)
        self.audit("supplement_submitted", number=state.case.number, reference=done.reference,
                   status=result.get("status", ""))
        return state.outcome

    def receipt_context(self) -> dict[str, Any]:
        """The ``supp`` of the supplement_receipt template (masked applicant only)."""
        state = self.state
        if state.case is None or state.outcome is None:
            raise InvalidSessionState("supplement: nothing submitted")
        case, outcome = state.case, state.outcome
        result = outcome.result or {}
        slots = {s.index: s for s in state.slots}
        given = [{"name": name, "form": MATERIAL_FORMS.get(slots[i].how(), slots[i].how())}
                 for i, name in case.missing if i in slots and slots[i].provided]
        sent = filled(state.form) if state.form is not None else {}
        given += [{"name": f.title, "form": MATERIAL_FORMS["form"]} for f in case.fields if f.name in sent]
        citizen = self.ctx.session.citizen
        return {"number": case.number, "service_name": case.service_name,
                "applicant_masked": result.get("applicant_masked") or (citizen.name_masked if citizen else ""),
                "department": case.department, "submitted": outcome.status == "submitted",
                "reference": outcome.reference, "status_text": self.ctx.status_texts().get(
                    result.get("status", ""), "") if outcome.status == "submitted" else "",
                "outstanding": len(result.get("outstanding") or []), "materials": given,
                "at": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
                "verify_url": self.ctx.public_urls.application(case.number)}

    def print_receipt_now(self) -> Any:
        """Print the 补正回执 (through the print journal)."""
        supp = self.receipt_context()
        result = self.ctx.print_service.print_receipt("supplement_receipt", summary=f"补正回执 {supp['number']}",
                                                       supp=supp)
        self.printed("print_supplement", result)
        return result

    # --- for screens --------------------------------------------------------------------------------------------
    def waiting(self, on_result: Callback = None, on_error: Callback = None) -> None:
        self.run_identified("supplement_list", self.waiting_now, on_result=on_result, on_error=on_error)

    def open(self, number: str, on_result: Callback = None, on_error: Callback = None) -> None:
        self.run_identified("supplement_open", self.open_now, number, on_result=on_result, on_error=on_error)

    def capture(self, index: int, on_result: Callback = None, on_error: Callback = None) -> None:
        self.run_identified("supplement_capture", self.capture_now, index, on_result=on_result, on_error=on_error)

    def phone(self, index: int, on_result: Callback = None, on_error: Callback = None, on_files: Callback = None,
              on_end: Callback = None) -> None:
        self.run_identified("supplement_phone", self.phone_now, index, on_files, on_end, on_result=on_result,
                            on_error=on_error)

    def submit(self, on_result: Callback = None, on_error: Callback = None) -> None:
        self.run_identified("supplement_submit", self.submit_now, on_result=on_result, on_error=on_error)

    def print_receipt(self, on_result: Callback = None, on_error: Callback = None) -> None:
        self.run("print_supplement", self.print_receipt_now, on_result=on_result, on_error=on_error)

    def error_text(self, exc: BaseException) -> str:
        return rejection_text(self.ctx, exc, "supplement")

    def rating_target(self) -> RatingTarget:
        case = self.state.case
        return RatingTarget("application", case.number if case else "", "supplement")

    def done(self) -> None:
        self.finish(self.rating_target())
