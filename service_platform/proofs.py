"""Proofs (证明) generated from the registry data: what each type is, which periods a citizen can choose, and the
content of one proof (:class:`ProofContent`, drawn by proof_pdf.py).

Types: ``social_insurance_payment`` 社会保险个人缴费证明 (pension contributions, per month), ``medical_insurance``
基本医疗保险参保证明 (per month), ``housing_fund_deposit`` 住房公积金缴存证明 (per month), ``real_estate_record``
不动产登记信息查询结果 (registered properties, or none: 无房证明), ``household_record`` 户籍证明.

Months are ``YYYY-MM``. The latest month of a periodic proof is the month before the current one (China time): the
current month's contributions are not booked yet. Contributions are stored as spans (proof_models.ContributionSpan)
and expanded month by month here.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from service_platform.db import CHINA_TZ
from service_platform.errors import ApiError
from service_platform.models import RegisteredCitizen
from service_platform.proof_models import ContributionSpan, HouseholdRecord, PropertyRecord

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class ProofType:
    code: str
    name: str
    name_en: str
    issuer: str
    scheme: str | None  # contribution scheme of a periodic proof; None: not periodic
    max_months: int = 0

    @property
    def periodic(self) -> bool:
        return self.scheme is not None


PROOF_TYPES: dict[str, ProofType] = {t.code: t for t in (
    ProofType("social_insurance_payment", "社会保险个人缴费证明", "Social insurance payment record",
              "蚌埠市人力资源和社会保障局", "pension", 180),
    ProofType("medical_insurance", "基本医疗保险参保证明", "Medical insurance participation record",
              "蚌埠市医疗保障局", "medical", 180),
    ProofType("housing_fund_deposit", "住房公积金缴存证明", "Housing provident fund deposit record",
              "蚌埠市住房公积金管理中心", "housing_fund", 180),
    ProofType("real_estate_record", "不动产登记信息查询结果证明", "Real-estate registration record",
              "蚌埠市不动产登记中心", None),
    ProofType("household_record", "户籍证明", "Household registration record",
              "蚌埠市公安局龙子湖分局", None),
)}


# --- months --------------------------------------------------------------------------------------------------------

def month_index(month: str) -> int:
    m = _MONTH.match(month)
    if not m:
        raise ValueError(f"not a month (YYYY-MM): {month!r}")
    return int(m.group(1)) * 12 + int(m.group(2)) - 1


def month_text(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def latest_month(now: dt.datetime) -> str:
    """The last month with booked contributions: the month before the current one in China."""
    today = now.astimezone(CHINA_TZ).date()
    return month_text(today.year * 12 + today.month - 1 - 1)


def yuan(fen: int) -> str:
    return f"{fen / 100:,.2f}"


@dataclass(frozen=True)
class MonthRecord:
    month: str
    employer: str
    account_no: str
    base_fen: int
    personal_fen: int
    employer_fen: int


def contribution_months(spans: list[ContributionSpan], latest: str) -> list[MonthRecord]:
    """Every booked month of these spans up to ``latest``, oldest first."""
    out: list[MonthRecord] = []
    last = month_index(latest)
    for span in sorted(spans, key=lambda s: (month_index(s.from_month), s.position)):
        start = month_index(span.from_month)
        end = min(month_index(span.to_month) if span.to_month else last, last)
        for i in range(start, end + 1):
            years = i // 12 - start // 12
            base = span.base_fen
            for _ in range(years):
                base = base * (1000 + span.yearly_raise_permille) // 1000
            base = base // 100 * 100  # bases are whole yuan
            out.append(MonthRecord(month_text(i), span.employer, span.account_no, base,
                                   base * span.personal_permille // 1000, base * span.employer_permille // 1000))
    return out


# --- what the list shows -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Availability:
    type: ProofType
    has_records: bool
    earliest_month: str | None
    latest_month: str | None
    default_from: str | None
    default_to: str | None
    summary_zh: str
    summary_en: str


def _spans(db: Session, id_number: str, scheme: str) -> list[ContributionSpan]:
    return list(db.scalars(select(ContributionSpan).where(ContributionSpan.id_number == id_number,
                                                          ContributionSpan.scheme == scheme)
                           .order_by(ContributionSpan.from_month, ContributionSpan.position)).all())


def availability(db: Session, id_number: str, proof: ProofType, now: dt.datetime) -> Availability:
    if proof.periodic:
        assert proof.scheme is not None
        months = contribution_months(_spans(db, id_number, proof.scheme), latest_month(now))
        if not months:
            return Availability(proof, False, None, None, None, None, "无缴费记录", "no contributions on record")
        first, last = months[0].month, months[-1].month
        default_from = month_text(max(month_index(first), month_index(last) - 11))
        return Availability(proof, True, first, last, default_from, last, f"累计缴费 {len(months)} 个月",
                            f"{len(months)} months paid in total")
    if proof.code == "real_estate_record":
        n = len(_properties(db, id_number))
        return Availability(proof, n > 0, None, None, None, None,
                            f"登记不动产 {n} 处" if n else "无登记不动产（无房证明）",
                            f"{n} registered properties" if n else "no registered property")
    record = db.get(HouseholdRecord, id_number)
    return Availability(proof, record is not None, None, None, None, None,
                        "户籍登记信息" if record else "无本市户籍登记信息",
                        "household registration" if record else "no household registration on record")


def _properties(db: Session, id_number: str) -> list[PropertyRecord]:
    return list(db.scalars(select(PropertyRecord).where(PropertyRecord.id_number == id_number)
                           .order_by(PropertyRecord.registered_on, PropertyRecord.position)).all())


def resolve_period(avail: Availability, period_from: str | None, period_to: str | None
                   ) -> tuple[str | None, str | None]:
    """The period asked for, checked (422 ``invalid_period``), or the default one."""
    proof = avail.type
    if not proof.periodic:
        if period_from or period_to:
            raise ApiError(422, "invalid_period", f"{proof.code} has no period",
                           details={"field": "period_from" if period_from else "period_to"})
        return None, None
    if not avail.has_records:
        if period_from or period_to:
            raise ApiError(422, "invalid_period", "there are no contributions on record to choose a period from")
        return None, None
    start = period_from or avail.default_from
    end = period_to or avail.default_to
    assert start and end and avail.earliest_month and avail.latest_month
    try:
        a, b = month_index(start), month_index(end)
    except ValueError as exc:
        raise ApiError(422, "invalid_period", str(exc)) from exc
    if period_from and not period_to:
        b = min(a + proof.max_months - 1, month_index(avail.latest_month))
    if period_to and not period_from:
        a = max(b - 11, month_index(avail.earliest_month))
    if a > b:
        raise ApiError(422, "invalid_period", "period_from must not be after period_to")
    if a < month_index(avail.earliest_month) or b > month_index(avail.latest_month):
        raise ApiError(422, "invalid_period",
                       f"the period must lie within {avail.earliest_month}…{avail.latest_month}",
                       details={"earliest_month": avail.earliest_month, "latest_month": avail.latest_month})
    if b - a + 1 > proof.max_months:
        raise ApiError(422, "invalid_period", f"at most {proof.max_months} months per proof",
                       details={"max_months": proof.max_months})
    return month_text(a), month_text(b)


# --- the content of one proof --------------------------------------------------------------------------------------

@dataclass
class ProofContent:
    """What proof_pdf.py draws: header rows, a paragraph, an optional table (repeated header across pages), summary
    rows and the closing statement."""

    proof: ProofType
    holder_name: str
    id_number: str
    issued_on: dt.date
    has_records: bool
    period_from: str | None = None
    period_to: str | None = None
    header_rows: list[tuple[str, str]] = field(default_factory=list)
    paragraph: str = ""
    table_headers: tuple[str, ...] = ()
    table_widths: tuple[float, ...] = ()
    table_rows: list[tuple[str, ...]] = field(default_factory=list)
    summary_rows: list[tuple[str, str]] = field(default_factory=list)
    statement: str = "特此证明。"


def _cn_date(day: dt.date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def _cn_month(month: str) -> str:
    return f"{month[:4]}年{int(month[5:])}月"


def build(db: Session, id_number: str, proof: ProofType, period_from: str | None, period_to: str | None,
          now: dt.datetime) -> ProofContent:
    """The content of one proof for ``id_number`` (a person of the registry) and a checked period."""
    person = db.get(RegisteredCitizen, id_number)
    if person is None:
        raise ApiError(404, "not_found", "no registry entry for this citizen")
    today = now.astimezone(CHINA_TZ).date()
    content = ProofContent(proof=proof, holder_name=person.name, id_number=id_number, issued_on=today,
                           has_records=True, period_from=period_from, period_to=period_to,
                           header_rows=[("姓名", person.name), ("证件号码", id_number)])
    if proof.periodic:
        _contributions(db, content, now)
    elif proof.code == "real_estate_record":
        _real_estate(db, content, today)
    else:
        _household(db, content, person, today)
    return content


_SCHEME_TEXT = {"pension": ("企业职工基本养老保险", "养老保险个人账户号"),
                "medical": ("基本医疗保险", "医保个人编号"),
                "housing_fund": ("住房公积金", "公积金个人账号")}


def _contributions(db: Session, c: ProofContent, now: dt.datetime) -> None:
    assert c.proof.scheme is not None
    scheme_name, account_label = _SCHEME_TEXT[c.proof.scheme]
    months = contribution_months(_spans(db, c.id_number, c.proof.scheme), latest_month(now))
    if not months:
        c.has_records = False
        c.paragraph = (f"经查询，截至{_cn_date(c.issued_on)}，{c.holder_name}（证件号码 {c.id_number}）"
                       f"在本系统中无{scheme_name}参保缴费记录。")
        c.statement = "特此证明（查无记录）。"
        return
    assert c.period_from and c.period_to
    lo, hi = month_index(c.period_from), month_index(c.period_to)
    inside = [m for m in months if lo <= month_index(m.month) <= hi]
    booked = {m.month for m in inside}
    gaps = [month_text(i) for i in range(lo, hi + 1) if month_text(i) not in booked]
    current = months[-1]
    c.header_rows += [(account_label, current.account_no), ("险种" if c.proof.scheme != "housing_fund" else "类别",
                                                            scheme_name),
                      ("首次参保年月" if c.proof.scheme != "housing_fund" else "开户年月", _cn_month(months[0].month)),
                      ("当前缴费单位" if c.proof.scheme != "housing_fund" else "当前缴存单位", current.employer),
                      ("证明期间", f"{_cn_month(c.period_from)} 至 {_cn_month(c.period_to)}")]
    verb = "缴存" if c.proof.scheme == "housing_fund" else "缴费"
    c.paragraph = (f"兹证明 {c.holder_name}（证件号码 {c.id_number}）参加{scheme_name}，"
                   f"{_cn_month(c.period_from)}至{_cn_month(c.period_to)}期间{verb}情况如下：")
    c.table_headers = ("年月", "单位", f"{verb}基数(元)", "个人(元)", "单位(元)", "合计(元)")
    c.table_widths = (22, 64, 26, 22, 22, 24)
    for m in inside:
        if m.base_fen == 0:
            c.table_rows.append((m.month, m.employer, "—", "—", "—", "免缴/统筹"))
        else:
            c.table_rows.append((m.month, m.employer, yuan(m.base_fen), yuan(m.personal_fen), yuan(m.employer_fen),
                                 yuan(m.personal_fen + m.employer_fen)))
    personal = sum(m.personal_fen for m in inside)
    employer = sum(m.employer_fen for m in inside)
    c.summary_rows = [(f"本期{verb}月数", f"{len(inside)} 个月"), ("本期中断月数", f"{len(gaps)} 个月"),
                      ("本期个人缴纳合计", f"{yuan(personal)} 元"), ("本期单位缴纳合计", f"{yuan(employer)} 元"),
                      (f"累计{verb}月数", f"{len(months)} 个月")]
    if c.proof.scheme == "housing_fund":
        total = sum(m.personal_fen + m.employer_fen for m in months)
        ongoing = month_index(months[-1].month) == month_index(latest_month(now))
        c.summary_rows += [("累计缴存总额", f"{yuan(total)} 元"), ("账户状态", "正常缴存" if ongoing else "封存")]
    if not inside:
        c.paragraph += "本期间无缴费记录。"


def _real_estate(db: Session, c: ProofContent, today: dt.date) -> None:
    rows = _properties(db, c.id_number)
    c.header_rows.append(("查询日期", _cn_date(today)))
    if not rows:
        c.has_records = False
        c.paragraph = (f"经查询蚌埠市不动产登记信息系统，截至{_cn_date(today)}，"
                       f"未发现 {c.holder_name}（证件号码 {c.id_number}）名下有已登记的不动产权利（无房）。")
        c.statement = "特此证明（无房证明）。"
        return
    c.paragraph = (f"经查询蚌埠市不动产登记信息系统，截至{_cn_date(today)}，"
                   f"{c.holder_name}（证件号码 {c.id_number}）名下登记的不动产共 {len(rows)} 处，信息如下：")
    c.table_headers = ("不动产权证号", "坐落", "面积(㎡)", "用途", "共有情况", "登记日期")
    c.table_widths = (48, 62, 18, 14, 18, 20)
    c.table_rows = [(p.cert_no, p.location, p.area_m2, p.usage, p.ownership, p.registered_on.isoformat())
                    for p in rows]
    c.summary_rows = [("不动产数量", f"{len(rows)} 处")]


def _household(db: Session, c: ProofContent, person: RegisteredCitizen, today: dt.date) -> None:
    record = db.get(HouseholdRecord, c.id_number)
    if record is None:
        c.has_records = False
        c.paragraph = (f"经查询，截至{_cn_date(today)}，本市户籍管理系统中无 {c.holder_name}"
                       f"（证件号码 {c.id_number}）的户籍登记信息。")
        c.statement = "特此证明（查无记录）。"
        return
    sex = {"male": "男", "female": "女"}.get(person.sex, person.sex)
    c.header_rows = [("姓名", person.name), ("性别", sex), ("民族", person.nation or "—"),
                     ("出生日期", _cn_date(person.birth_date)), ("公民身份号码", c.id_number),
                     ("户号", record.household_no), ("户别", record.household_type), ("户主姓名", record.head_name),
                     ("与户主关系", record.relation), ("住址", record.address),
                     ("登记日期", _cn_date(record.registered_on)), ("何地迁来", record.moved_from or "—"),
                     ("登记机关", record.police_station)]
    c.paragraph = f"兹证明 {person.name} 的户籍登记信息如上，经核对与本市户籍管理系统记录一致。"
