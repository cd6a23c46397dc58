"""Applying for someone else (代办) at the kiosk:

    agent's card + face ──begin──► WAIT_PRINCIPAL ──principal's ID card read──► SERVICES (only those that allow an
    agent) ──choose──► FORM (pre-filled for the principal by the platform) ──submit──► RESULT (number, receipt with
    both masked names)

The agent is the identified citizen of the session and must be confirmed (face check, or a social-security card's
PIN): :class:`AgentNotConfirmed` otherwise. The principal's card is read by the same ID reader while the session
has its citizen: the core hands that read to :meth:`ProxyFlow.card_read` instead of ignoring it. The principal is
never a session of their own; the platform checks their card against the population registry. Materials: those
the principal's card or the form cover need nothing, deferrable ones are deferred with the agent's commitment,
optional ones are left out; a service that needs a document on the spot says so (:class:`MaterialNeeded`: the
window). Everything about the principal lives in the session's scratch and goes at session end.

Submitting goes through the encrypted :class:`~kiosk.outbox.Outbox` (kind ``proxy_application``), as the agent's own
applications do (kiosk/usecases/apply.py): journaled with its Idempotency-Key first (the payload — the agent's token,
the principal's card data, the form — sealed like the other kinds' citizen data and erased once the platform
answered), then sent. Platform unreachable: the agent gets the outbox reference on screen and on the receipt, and the
outbox's drainer files it later with the same key and ``X-Captured-At`` (exactly once, even after the session ended or
the kiosk was killed). A retry in the same session reuses the journaled row and its key.

Events (``core.subscribe``): ``proxy_principal`` (``principal_masked``) when the principal's card was accepted,
``proxy_principal_error`` (``error``) when it was not (expired, the agent's own card, not a resident card).
"""
from __future__ import annotations

import datetime as dt
import enum
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from kiosk.errors import CitizenSessionExpired, KioskError, PlatformUnavailable
from kiosk import forms
from kiosk.forms import FieldError, Form, validate
from kiosk.identity_levels import STRONG
from kiosk.outbox import Outbox, OutboxItem
from kiosk.platform_client import MaterialRef, PlatformClient, ServiceDetail, ServiceSummary
from kiosk.session import RatingTarget
from kiosk.usecases import identify
from kiosk.usecases.apply import filed_result
from kiosk.usecases.booking import Callback, CoreFlow, NotIdentified

if TYPE_CHECKING:
    from kiosk.context import UseCaseContext

RELATIONSHIPS = ("parent", "child", "spouse", "relative", "other")
RELATIONSHIP_ZH = {"parent": "父母", "child": "子女", "spouse": "配偶", "relative": "其他亲属", "other": "其他"}
SCRATCH = "proxy"
#: the outbox kind of a proxy application
KIND = "proxy_application"


class Step(str, enum.Enum):
    WAIT_PRINCIPAL = "wait_principal"
    SERVICES = "services"
    FORM = "form"
    RESULT = "result"


class AgentNotConfirmed(KioskError):
    """The agent's identity is not confirmed by face (or card PIN): nobody may act for someone else on a card alone."""

    code = "proxy_agent_not_confirmed"
    translation_key = "proxy.error.agent_not_confirmed"


class PrincipalIsAgent(KioskError):
    code = "proxy_principal_is_agent"
    translation_key = "proxy.error.principal_is_agent"


class PrincipalNotAccepted(KioskError):
    """The principal's card cannot be used (expired, or not a resident ID card)."""

    code = "proxy_principal_not_accepted"
    translation_key = "proxy.error.principal_not_accepted"


class NoPrincipal(KioskError):
    code = "proxy_no_principal"
    translation_key = "proxy.error.no_principal"


class MaterialNeeded(KioskError):
    """A required material can only be handed in at the window (the agent cannot use the principal's e-certificates
    and this flow takes no photos)."""

    code = "proxy_material_needed"
    translation_key = "proxy.error.material_needed"


class FormIncomplete(KioskError):
    code = "form_incomplete"
    translation_key = "apply.error.form_incomplete"

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(f"{len(errors)} field(s) to correct")
        self.errors = errors


@dataclass
class Principal:
    """The person the agent applies for, from their card (personal data: session memory only)."""

    id_number: str = field(repr=False)
    name: str = field(repr=False)
    document_kind: str
    name_masked: str
    id_masked: str

    def to_json(self) -> dict[str, str]:
        return {"id_number": self.id_number, "name": self.name, "document_kind": self.document_kind}


@dataclass
class ProxyState:
    step: Step = Step.WAIT_PRINCIPAL
    principal: Principal | None = None
    detail: ServiceDetail | None = None
    form: Form | None = None
    relationship: str = "child"
    result: "ProxyResult | None" = None
    item_id: str | None = None        # outbox row of the confirmed request (a retry keeps it and its key)


@dataclass(frozen=True)
class ProxyResult:
    """``submitted`` (the platform's answer in ``result``: number, …) or ``queued`` (in the outbox, filed later;
    ``reference`` is what the agent keeps)."""

    status: str
    reference: str
    agent_masked: str
    principal_masked: str
    relationship: str
    result: dict[str, Any] | None = None
    print_result: Any = None
    print_error: BaseException | None = None

    @property
    def submitted(self) -> bool:
        return self.status == "submitted"

    @property
    def number(self) -> str:
        """The application number ("" while queued)."""
        return str((self.result or {}).get("number") or "")


def proxy_sender(platform: PlatformClient) -> Callable[[dict[str, Any], str, dt.datetime], dict[str, Any]]:
    """The outbox's sender for ``proxy_application`` items. What it keeps: the filed application as
    :func:`~kiosk.usecases.apply.filed_result` keeps it, and both masked names (nothing else personal)."""

    def send(payload: dict[str, Any], key: str, captured_at: dt.datetime) -> dict[str, Any]:
        refs = [MaterialRef(m["index"], upload_ids=tuple(m.get("upload_ids") or ()), defer=bool(m.get("defer")))
                for m in payload["materials"]]
        filed, parties = platform.file_proxy_application(
            payload["token"], payload["service_code"], payload["principal"], payload["relationship"],
            payload["form"], refs, bool(payload.get("commitment")), idempotency_key=key, captured_at=captured_at)
        return {**filed_result(filed), "proxy": {"agent_masked": parties.get("agent_masked") or "",
                                                 "principal_masked": parties.get("principal_masked") or "",
                                                 "relationship": parties.get("relationship") or ""}}
    return send


class ProxyFlow(CoreFlow):
    name = "proxy"

    def __init__(self, ctx: "UseCaseContext", outbox: Outbox | None = None) -> None:
        super().__init__(ctx)
        self.outbox = outbox if outbox is not None else ctx.outbox
        self.outbox.register(KIND, proxy_sender(ctx.platform))

    # --- state ------------------------------------------------------------------------------------------------------
    @property
    def state(self) -> ProxyState | None:
        return self.ctx.session.data.scratch.get(SCRATCH)

    @property
    def waiting_for_principal(self) -> bool:
        state = self.state
        return state is not None and state.step is Step.WAIT_PRINCIPAL

    def _state(self) -> ProxyState:
        state = self.state
        if state is None:
            raise NoPrincipal("the proxy flow was not started")
        return state

    def begin_now(self) -> ProxyState:
        """The agent starts (blocking: waits for the agent's platform session): must be identified and confirmed by
        face or card PIN. The next ID card read is the principal's."""
        if not self.identified:
            raise NotIdentified("no identified citizen")
        self.token()   # the agent's platform session (its level is what the platform will hold the filing to)
        citizen = self.ctx.session.citizen
        if self.ctx.identity_level() not in STRONG and getattr(citizen, "level", "") not in STRONG:
            raise AgentNotConfirmed("the agent is not confirmed by face or card PIN")
        state = ProxyState()
        self.ctx.session.data.scratch[SCRATCH] = state
        self.ctx.session.touch()
        for watcher in self.ctx.card_watchers:   # a card is expected now: the watchers poll fast
            expect = getattr(watcher, "expect_card", None)
            if expect is not None:
                expect()
        self.audit("proxy_started")
        return state

    def begin(self, on_result: Callback = None, on_error: Callback = None) -> None:
        self.run_identified("proxy_begin", self.begin_now, on_result=on_result, on_error=on_error)

    def cancel(self) -> None:
        self.ctx.session.data.scratch.pop(SCRATCH, None)

    # --- the principal's card (from the core, on the dispatcher's thread) -----------------------------------------
    def card_read(self, document: Any, today: dt.date | None = None) -> None:
        state = self.state
        if state is None or state.step is not Step.WAIT_PRINCIPAL:
            return
        agent = self.ctx.session.citizen
        try:
            if document.id_number == getattr(getattr(agent, "document", None), "id_number", None):
                raise PrincipalIsAgent("the agent placed their own card")
            kind = getattr(document.kind, "value", str(document.kind))
            if kind not in ("resident_id", "hmt_residence_permit"):
                raise PrincipalNotAccepted("only a resident ID card or residence permit")
            citizen = identify.citizen_from_document(document, today or dt.date.today())
        except KioskError as exc:
            self.audit("proxy_principal_refused", code=exc.code)
            self.ctx.emit("proxy_principal_error", error=exc)
            return
        except Exception as exc:  # noqa: BLE001 - e.g. CardExpired from the driver's error family
            self.audit("proxy_principal_refused", code=getattr(exc, "code", type(exc).__name__))
            self.ctx.emit("proxy_principal_error", error=exc)
            return
        state.principal = Principal(id_number=document.id_number, name=document.name, document_kind=kind,
                                    name_masked=citizen.name_masked, id_masked=citizen.id_masked)
        state.step = Step.SERVICES
        self.audit("proxy_principal_read")
        self.ctx.emit("proxy_principal", principal_masked=citizen.name_masked)

    # --- services and form ------------------------------------------------------------------------------------------
    def services_now(self) -> list[ServiceSummary]:
        return [s for s in self.ctx.platform.search_services(limit=100, agent_allowed=True) if s.agent_allowed]

    def services(self, on_result: Callback = None, on_error: Callback = None) -> None:
        self.run_identified("proxy_services", self.services_now, on_result=on_result, on_error=on_error)

    def choose_now(self, code: str) -> ProxyState:
        state = self._state()
        if state.principal is None:
            raise NoPrincipal("no principal card read yet")
        principal = state.principal.to_json()
        detail = self.ctx.platform.service_detail(code)
        prefill = self.with_token(lambda token: self.ctx.platform.proxy_prefill(token, code, principal))
        if detail.form_schema is None:
            raise MaterialNeeded("the service has no online form")
        form = Form.from_schema(detail.form_schema)
        form.apply_prefill(prefill.form, prefill.sources)
        state.detail, state.form, state.step = detail, form, Step.FORM
        state.result, state.item_id = None, None   # another choice: its own request (a retry finds its row by key)
        return state

    def choose(self, code: str, on_result: Callback = None, on_error: Callback = None) -> None:
        self.run_identified("proxy_choose", self.choose_now, code, on_result=on_result, on_error=on_error)

    def set_field(self, pointer: str, value: Any, *, typed: bool = True) -> None:
        """``typed``: ``value`` is keyboard text (converted to the field's type)."""
        form = self._state().form
        if form is None:
            raise NoPrincipal("no service chosen")
        forms.set_field(form, pointer, value, typed)
        self.ctx.session.touch()

    def set_relationship(self, relationship: str) -> None:
        if relationship not in RELATIONSHIPS:
            raise ValueError(f"relationship must be one of {RELATIONSHIPS}")
        self._state().relationship = relationship

    def materials(self) -> tuple[list[Any], bool]:
        """The material references to send and whether anything is deferred (needs the agent's commitment)."""
        from kiosk.platform_client import MaterialRef

        detail = self._state().detail
        assert detail is not None
        refs: list[Any] = []
        for m in detail.materials:
            if m.satisfied_by:
                continue
            if m.deferrable:
                refs.append(MaterialRef(m.index, defer=True))
            elif m.required:
                raise MaterialNeeded(f"material {m.index} must be handed in at the window", material=m.name)
        return refs, bool(refs)

    # --- submitting -------------------------------------------------------------------------------------------------
    def submit_now(self) -> ProxyResult:
        """Journal the application in the outbox (with its Idempotency-Key), then send it; print the receipt. The
        result is ``submitted`` with the number, or ``queued`` with the outbox reference when the platform is
        unreachable (the drainer files it later). A refusal (e.g. :class:`~kiosk.platform_client.PreReviewFailed`) is
        raised; the next submit journals the corrected request anew."""
        state = self._state()
        if state.result is not None:
            return state.result          # a second tap: nothing is filed or printed twice
        if state.principal is None or state.detail is None or state.form is None:
            raise NoPrincipal("nothing to submit")
        errors = validate(state.form)
        if errors:
            raise FormIncomplete(errors)
        refs, deferred = self.materials()
        code = state.detail.summary.code
        payload = {"token": "", "service_code": code, "principal": state.principal.to_json(),
                   "relationship": state.relationship, "form": state.form.to_json(),
                   "materials": [r.to_json() for r in refs], "commitment": deferred}
        item = self._journaled(state, payload)
        try:
            try:
                done = self.outbox.attempt(item.id)
            except CitizenSessionExpired:
                # the agent's platform session ran out while they filled the form: refused, nothing filed; once more
                # with a new one (a new row and key, as with_token does for the other calls)
                item = self._journaled(state, payload, fresh=True)
                done = self.outbox.attempt(item.id)
        except PlatformUnavailable:
            self.audit("proxy_queued", service=code, reference=item.reference, relationship=state.relationship)
            return self._finish(state, self._result(state, "queued", item.reference, None))
        except Exception:
            if state.item_id and self.outbox.get(state.item_id).state == "rejected":
                state.item_id = None     # refused (payload erased): a corrected submit is a new request
            raise
        result = done.result or {}
        self.audit("proxy_filed", service=code, number=result.get("number", ""), reference=done.reference,
                   relationship=state.relationship)
        return self._finish(state, self._result(state, "submitted", done.reference, result))

    def _journaled(self, state: ProxyState, payload: dict[str, Any], fresh: bool = False) -> OutboxItem:
        """The outbox row of this request: the one journaled before (a retry), or a new one with this choice's key
        (a new key once the previous row was refused: the platform answered it, nothing was filed)."""
        assert state.principal is not None and state.detail is not None
        choice = ("submit", state.detail.summary.code, state.principal.id_masked)
        key = self.key(*choice)
        item = self.outbox.get(state.item_id) if state.item_id and not fresh else self.outbox.by_key(key)
        if item is not None and item.kind == KIND and item.state != "rejected" and not fresh:
            state.item_id = item.id
            return item
        if item is not None:
            key = self.ctx.session.data.scratch[(self.name + "_key", *choice)] = str(uuid.uuid4())
        self.ctx.require_storage("application")   # data disk full: StorageFull, nothing journaled
        payload["token"] = self.token(fresh=fresh)
        with self.ctx.storage.writing("outbox"):
            item = self.outbox.put(KIND, payload, idempotency_key=key)
        state.item_id = item.id
        return item

    def _result(self, state: ProxyState, status: str, reference: str, result: dict[str, Any] | None
                ) -> ProxyResult:
        assert state.principal is not None
        parties = (result or {}).get("proxy") or {}
        citizen = self.ctx.session.citizen
        return ProxyResult(status, reference,
                           parties.get("agent_masked") or (citizen.name_masked if citizen else ""),
                           parties.get("principal_masked") or state.principal.name_masked, state.relationship,
                           result)

    def _finish(self, state: ProxyState, result: ProxyResult) -> ProxyResult:
        """Print the receipt (number, or the outbox reference), show the result, forget the form."""
        printed, failed = None, None
        try:
            printed = self.ctx.print_service.print_receipt(
                "proxy_receipt", summary=f"代办业务受理回执 {result.number or result.reference}",
                proxy=self.receipt_context(result))
            self.printed("print_proxy", printed)
        except Exception as exc:  # noqa: BLE001 - the number is on screen; the receipt is a copy of it
            failed = exc
            self.audit("print_failed", action="print_proxy", code=getattr(exc, "code", type(exc).__name__))
        result = ProxyResult(result.status, result.reference, result.agent_masked, result.principal_masked,
                             result.relationship, result.result, printed, failed)
        state.result, state.step = result, Step.RESULT
        if state.form is not None:
            state.form.clear()
        return result

    def submit(self, on_result: Callback = None, on_error: Callback = None) -> None:
        self.run_identified("proxy_submit", self.submit_now, on_result=on_result, on_error=on_error)

    def receipt_context(self, result: ProxyResult) -> dict[str, Any]:
        """The ``proxy`` of the proxy_receipt template (masked names only). Queued: the outbox reference instead of
        the number, what the kiosk knows of the service, no QR (there is no application to look up yet)."""
        state = self._state()
        assert state.detail is not None
        summary, r = state.detail.summary, result.result or {}
        outstanding = [m["name"] for m in r.get("materials") or [] if m.get("status") == "outstanding"]
        return {"submitted": result.submitted, "reference": result.reference, "number": result.number,
                "service_name": r.get("service_name") or summary.name, "principal_masked": result.principal_masked,
                "agent_masked": result.agent_masked,
                "relationship_text": RELATIONSHIP_ZH.get(result.relationship, result.relationship),
                "department": r.get("department") or summary.department,
                "accepted_at": (str(r.get("submitted_at") or "")[:16].replace("T", " ") if result.submitted
                                else dt.datetime.now().strftime("%Y-%m-%d %H:%M")),
                "promised_date": r.get("promised_date"), "outstanding": outstanding,
                "supplement_due": r.get("supplement_due") or "",
                "verify_url": self.ctx.public_urls.application(result.number) if result.submitted else ""}

    def done(self) -> None:
        """The agent has read the result: ask for the rating of it."""
        state = self.state
        if state is not None and state.result is not None:
            if state.result.number:
                self.finish(RatingTarget("application", state.result.number, "proxy_apply"))
            else:   # queued: no number yet, the service is what is rated (as in the apply flow)
                code = state.detail.summary.code if state.detail else ""
                self.finish(RatingTarget("service", code, "proxy_apply"))
