"""Pre-review of an online filing (网上预审): the form against the service's JSON Schema and every material against the
guide, answered at once with ALL missing or wrong items (一次性告知).

Materials: one the form itself is (``online_form``) or the identity check covers (e-certificate type 居民身份证) needs
nothing; otherwise it is provided by one of the citizen's e-certificates of the right type, valid, not revoked and of
trust level A–C, or by page images the citizen's kiosk uploaded (readable: ≥ 1000 × 700 px, not blank), or — when the
guide allows it (容缺受理) — deferred with the citizen's commitment to supply it by the deadline.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from service_platform.forms import form_problems
from service_platform.models import ECertificate, Service, ServiceFilingRule, ServiceMaterial, Upload
from service_platform.schemas import MaterialRef, MaterialState, Problem

IDENTITY_CERT_NAME = "居民身份证"
ACCEPTED_TRUST = ("A", "B", "C")
MIN_LONG_SIDE, MIN_SHORT_SIDE = 1000, 700


def cert_status(cert: ECertificate, today: dt.date) -> str:
    if cert.revoked:
        return "revoked"
    if cert.valid_until is not None and cert.valid_until < today:
        return "expired"
    return "valid"


def satisfied_by(index: int, material: ServiceMaterial, rule: ServiceFilingRule | None) -> str | None:
    if rule is None:
        return None
    if index in (rule.form_materials or []):
        return "form"
    if material.e_cert_type == IDENTITY_CERT_NAME:
        return "identity"
    return None


@dataclass
class Review:
    problems: list[Problem] = field(default_factory=list)
    materials: list[MaterialState] = field(default_factory=list)
    certificates: dict[str, ECertificate] = field(default_factory=dict)
    uploads: dict[str, Upload] = field(default_factory=dict)

    @property
    def outstanding(self) -> list[int]:
        return [m.index for m in self.materials if m.status == "outstanding"]

    def problem(self, code: str, zh: str, en: str, *, index: int | None = None, pointer: str | None = None) -> None:
        self.problems.append(Problem(code=code, field=pointer, material_index=index, message=zh, message_en=en))


class _Checker:
    def __init__(self, db: Session, service: Service, id_number: str, today: dt.date,
                 application_id: int | None = None) -> None:
        self.db = db
        self.service = service
        self.id_number = id_number
        self.today = today
        self.application_id = application_id
        self.review = Review()

    def refs_by_index(self, refs: Sequence[MaterialRef]) -> dict[int, MaterialRef]:
        out: dict[int, MaterialRef] = {}
        count = len(self.service.materials)
        for ref in refs:
            if ref.index >= count:
                self.review.problem("unknown_material", f"第{ref.index + 1}项材料不存在",
                                    f"There is no material {ref.index + 1}", index=ref.index)
            elif ref.index in out:
                name = self.service.materials[ref.index].name
                self.review.problem("duplicate_material", f"材料“{name}”重复提交",
                                    f"“{name}” was given twice", index=ref.index)
            else:
                out[ref.index] = ref
        return out

    def load(self, refs: Iterable[MaterialRef]) -> None:
        cert_ids = {r.e_certificate_id for r in refs if r.e_certificate_id}
        upload_ids = {u for r in refs for u in (r.upload_ids or [])}
        if cert_ids:
            self.review.certificates = {c.id: c for c in self.db.scalars(select(ECertificate).where(
                ECertificate.id.in_(cert_ids), ECertificate.holder_id_number == self.id_number)).all()}
        if upload_ids:
            self.review.uploads = {u.id: u for u in self.db.scalars(select(Upload).where(
                Upload.id.in_(upload_ids), Upload.owner_id_number == self.id_number)).all()}

    def provided(self, index: int, material: ServiceMaterial, ref: MaterialRef) -> MaterialState | None:
        """The state of a material given by e-certificate or uploads, or None (problems recorded)."""
        name = material.name
        r = self.review
        if ref.e_certificate_id is not None:
            cert = r.certificates.get(ref.e_certificate_id)
            if cert is None:
                r.problem("e_certificate_not_found", f"“{name}”所选电子证照不存在",
                          f"“{name}”: no such e-certificate of yours", index=index)
                return None
            if material.e_cert_type is None:
                r.problem("e_certificate_not_accepted", f"“{name}”不能用电子证照代替，请拍照上传",
                          f"“{name}” cannot be replaced by an e-certificate; photograph it", index=index)
                return None
            if cert.type.name != material.e_cert_type:
                r.problem("e_certificate_wrong_type", f"“{name}”需要{material.e_cert_type}，所选为{cert.type.name}",
                          f"“{name}” needs a {material.e_cert_type}, not a {cert.type.name}", index=index)
                return None
            status = cert_status(cert, self.today)
            if status == "revoked":
                r.problem("e_certificate_revoked", f"“{name}”所选{cert.type.name}已注销",
                          f"“{name}”: the {cert.type.name} was revoked", index=index)
                return None
            if status == "expired":
                r.problem("e_certificate_expired", f"“{name}”所选{cert.type.name}已过有效期",
                          f"“{name}”: the {cert.type.name} has expired", index=index)
                return None
            if cert.trust_level not in ACCEPTED_TRUST:
                r.problem("e_certificate_trust_too_low",
                          f"“{name}”所选{cert.type.name}为自行上传、未经核验的证照（D级），请提供原件或拍照上传",
                          f"“{name}”: the {cert.type.name} is unverified (level D); photograph the original",
                          index=index)
                return None
            return MaterialState(index=index, name=name, required=material.required, status="provided",
                                 source="e_certificate", e_certificate_id=cert.id)
        ok = True
        for upload_id in ref.upload_ids or []:
            upload = r.uploads.get(upload_id)
            if upload is None:
                r.problem("upload_not_found", f"“{name}”的照片不存在或已过期，请重新拍照",
                          f"“{name}”: the photo was not found; take it again", index=index)
                ok = False
            elif upload.application_id is not None and upload.application_id != self.application_id:
                r.problem("upload_already_used", f"“{name}”的照片已用于其他办件",
                          f"“{name}”: the photo belongs to another application", index=index)
                ok = False
            elif max(upload.width, upload.height) < MIN_LONG_SIDE or min(upload.width, upload.height) < MIN_SHORT_SIDE:
                r.problem("upload_low_resolution", f"“{name}”的照片不够清晰，请将材料放平后重新拍照",
                          f"“{name}”: the photo is too small to read; take it again", index=index)
                ok = False
            elif upload.blank:
                r.problem("upload_blank", f"“{name}”的照片是空白的，请将材料放入取景框后重新拍照",
                          f"“{name}”: the photo is blank; place the page in the frame", index=index)
                ok = False
        if not ok:
            return None
        return MaterialState(index=index, name=name, required=material.required, status="provided",
                             source="upload", upload_ids=list(ref.upload_ids or []))


def review_draft(db: Session, service: Service, rule: ServiceFilingRule, form: dict, refs: Sequence[MaterialRef],
                 commitment: bool, id_number: str, today: dt.date) -> Review:
    """Everything wrong with a new filing, and the state of each material."""
    check = _Checker(db, service, id_number, today)
    review = check.review
    for p in form_problems(rule.form_schema, form):
        review.problem("form_invalid", p.message, p.message_en, pointer=p.field)
    by_index = check.refs_by_index(refs)
    check.load(by_index.values())
    deferrable = set(rule.deferrable_materials or [])
    for index, material in enumerate(service.materials):
        ref = by_index.get(index)
        via = satisfied_by(index, material, rule)
        state: MaterialState | None
        if ref is None:
            if via is not None:
                state = MaterialState(index=index, name=material.name, required=material.required,
                                      status="provided", source=via)  # type: ignore[arg-type]
            elif material.required:
                review.problem("material_missing", f"缺少材料：{material.name}",
                               f"Missing material: {material.name}", index=index)
                state = MaterialState(index=index, name=material.name, required=True, status="missing")
            else:
                state = MaterialState(index=index, name=material.name, required=False, status="not_provided")
        elif ref.defer:
            if index not in deferrable:
                review.problem("material_not_deferrable", f"“{material.name}”不能容缺后补，请现在提供",
                               f"“{material.name}” cannot be supplied later; provide it now", index=index)
                state = None
            else:
                state = MaterialState(index=index, name=material.name, required=material.required,
                                      status="outstanding")
        else:
            state = check.provided(index, material, ref)
        review.materials.append(state or MaterialState(index=index, name=material.name,
                                                       required=material.required, status="missing"))
    if review.outstanding and not commitment:
        review.problem("commitment_required", "容缺受理需要您承诺在期限内补交材料",
                       "Deferring materials needs your commitment to supply them by the deadline")
    return review


def review_supplement(db: Session, service: Service, outstanding: set[int], refs: Sequence[MaterialRef],
                      id_number: str, today: dt.date, application_id: int) -> Review:
    """Check materials supplied later; only outstanding ones, and not deferred again."""
    check = _Checker(db, service, id_number, today, application_id)
    review = check.review
    by_index = check.refs_by_index(refs)
    check.load(by_index.values())
    for index, ref in sorted(by_index.items()):
        material = service.materials[index]
        if index not in outstanding:
            review.problem("material_not_outstanding", f"“{material.name}”无需补交",
                           f"“{material.name}” is not outstanding", index=index)
        elif ref.defer:
            review.problem("material_not_deferrable", f"“{material.name}”请现在提供",
                           f"“{material.name}”: provide it now", index=index)
        else:
            state = check.provided(index, material, ref)
            if state is not None:
                review.materials.append(state)
    return review
