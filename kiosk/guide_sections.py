"""The complete service guide (办事指南) in readable sections, from everything the platform returns: overview
(department, how much can be done online, whether an agent may apply), conditions, materials (the one-time notice),
process steps (by online depth), time limits, fees, legal basis, where to go with hours and phone, FAQs and sample
filled forms (示范文本) when the platform has them. Pure data: the guide screen draws it, tests read it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

Translate = Callable[..., str]


@dataclass(frozen=True)
class Section:
    key: str                    # stable id: overview, conditions, materials, steps, time_limits, fees, basis, …
    title: str
    lines: list[str] = field(default_factory=list)


def guide_sections(detail: Any, t: Translate, language: str) -> list[Section]:
    """The sections of ``detail`` (kiosk.platform_client.ServiceDetail) in reading order; empty ones left out."""
    s = detail.summary
    depth = int(getattr(s, "online_depth", 0) or 0)
    overview = [f"{t('guide.department')}：{s.department}"]
    if depth:
        overview.append(t("guide_full.online_depth", text=t(f"guide_full.depth.{depth}")))
    overview.append(t("guide_full.agent_yes", note=detail.agent_note) if getattr(s, "agent_allowed", False)
                    else t("guide_full.agent_no"))
    sections = [Section("overview", t("guide_full.overview"), overview)]
    if detail.conditions:
        sections.append(Section("conditions", t("guide.conditions"),
                                [f"{i}. {c}" for i, c in enumerate(detail.conditions, 1)]))
    materials = []
    for i, m in enumerate(detail.materials, 1):
        line = f"{i}. {m.name}" + ("" if m.required else f"（{t('guide.optional')}）")
        line += "\n    " + t("guide.material_line", originals=m.originals, copies=m.copies)
        if m.e_cert_type:
            line += "；" + t("guide.e_cert", type=m.e_cert_type)
        if m.note:
            line += "\n    " + m.note
        materials.append(line)
    sections.append(Section("materials", t("guide.materials"), materials))
    if depth:
        steps = t(f"guide_full.steps_by_depth.{depth}").split("|")
        sections.append(Section("steps", t("guide_full.steps"), [f"{i}. {x}" for i, x in enumerate(steps, 1)]))
    limits = []
    if detail.legal_days:
        limits.append(t("guide_full.legal_days", days=detail.legal_days))
    if detail.promised_days:
        limits.append(t("guide_full.promised_days", days=detail.promised_days))
    elif detail.promised_days == 0:
        limits.append(t("guide_full.on_the_spot"))
    if limits:
        sections.append(Section("time_limits", t("guide_full.time_limits"), limits))
    fee = t("guide.yuan", amount=f"{detail.fee_fen / 100:.2f}") if detail.fee_fen else t("guide.free")
    fees = [fee] + ([detail.fee_note] if detail.fee_note and detail.fee_note != fee else [])
    sections.append(Section("fees", t("guide_full.fees"), fees))
    if detail.basis:
        sections.append(Section("basis", t("guide_full.basis"), [detail.basis]))
    places = []
    for p in detail.places:
        places.append("\n".join(x for x in (
            p.get("name", ""), t("guide_full.address", text=p["address"]) if p.get("address") else "",
            t("guide_full.hours", text=p["hours"]) if p.get("hours") else "",
            t("guide_full.phone", text=p["phone"]) if p.get("phone") else "") if x))
    if places:
        sections.append(Section("places", t("guide_full.places"), places))
    if detail.faqs:
        sections.append(Section("faqs", t("guide_full.faqs"), [
            t("guide_full.question", text=f.get("q", "")) + "\n" + t("guide_full.answer", text=f.get("a", ""))
            for f in detail.faqs]))
    samples = []
    for form in getattr(detail, "sample_forms", None) or []:
        title = form.get("title") if language == "zh_CN" else form.get("title_en") or form.get("title")
        rows = [f"{(f.get('label') if language == 'zh_CN' else f.get('label_en') or f.get('label'))}：{f.get('value')}"
                for f in form.get("fields") or []]
        samples.append("\n".join([f"【{title}】", *rows] + ([form["note"]] if form.get("note") else [])))
    if samples:
        sections.append(Section("samples", t("guide_full.samples"), samples))
    return sections
