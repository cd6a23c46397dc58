"""Proof generation per type from the seeded registry data (no server): periods, "no record" proofs, long proofs over
many pages, and the verification codes printed on them."""
from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from service_platform.db import create_tables, make_engine, make_sessionmaker
from service_platform.errors import ApiError
from service_platform.proof_pdf import render_proof
from service_platform.proofs import (
    PROOF_TYPES, availability, build, contribution_months, month_index, resolve_period)
from service_platform.proof_models import ContributionSpan
from service_platform.seed.loader import seed_if_empty
from service_platform import verification_codes as vc

ZHANG, LI, WANG, CHEN, YANG, HUANG, ZHAO = ("340302195803172018", "35010219490822102X", "230202197511053015",
                                            "520302199002144027", "530102198306301518", "810000199205082049",
                                            "340302194501013033")
NOW = dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.timezone.utc)  # 2026-11-02 09:00 in China: latest month 2026-10


@pytest.fixture(scope="module")
def db() -> Iterator[Session]:
    engine = make_engine("sqlite://")
    create_tables(engine)
    with make_sessionmaker(engine)() as session:
        seed_if_empty(session, demo=True)
        yield session
    engine.dispose()


def pdf_text(data: bytes, tmp_path: Path, layout: bool = True) -> str:
    path = tmp_path / "p.pdf"
    path.write_bytes(data)
    return subprocess.run(["pdftotext", *(["-layout"] if layout else []), str(path), "-"], check=True,
                          capture_output=True, text=True).stdout


def test_verification_codes_are_random_checked_and_forgiving() -> None:
    codes = {vc.new_code() for _ in range(200)}
    assert len(codes) == 200
    for code in list(codes)[:20]:
        assert len(code) == 19 and code.count("-") == 3
        assert vc.normalize(code) == code
        assert vc.normalize(code.lower().replace("-", " ")) == code
        typo = code[:2] + ("1" if code[2] != "1" else "2") + code[3:]
        assert vc.normalize(typo) is None                      # one wrong character fails the check
    # two swapped neighbours fail the check — every pair of characters, in every place — except Luhn mod N's one
    # blind pair, the first and last characters of the alphabet (0 and Z), which a random test once drew
    base = "K7QM3XVA9PDRT2W"
    for place in range(len(base) - 1):
        for a in vc.ALPHABET:
            for b in vc.ALPHABET:
                if a == b or {a, b} == {"0", "Z"}:
                    continue
                body = base[:place] + a + b + base[place + 2:]
                swapped = base[:place] + b + a + base[place + 2:]
                assert vc.normalize(swapped + vc.check_char(body)) is None, (place, a, b)
    blind = "0Z" + base[2:]
    assert vc.normalize("Z0" + base[2:] + vc.check_char(blind)) is not None, "the one pair the check cannot see"
    body = "0123456789ABCDE"
    assert vc.normalize("o123456789abcde" + vc.check_char(body)) == vc.format_code(body + vc.check_char(body))
    assert vc.normalize("") is None and vc.normalize("SP20261027000102") is None


def test_months_expand_spans_with_the_yearly_base_raise_and_gaps(db: Session) -> None:
    spans = [ContributionSpan(id_number="x", scheme="pension", employer="A", account_no="1", from_month="2019-11",
                              to_month="2020-02", base_fen=300000, yearly_raise_permille=100, personal_permille=80,
                              employer_permille=160, position=0),
             ContributionSpan(id_number="x", scheme="pension", employer="B", account_no="1", from_month="2020-06",
                              to_month=None, base_fen=500000, yearly_raise_permille=0, personal_permille=80,
                              employer_permille=160, position=1)]
    months = contribution_months(spans, "2020-07")
    assert [m.month for m in months] == ["2019-11", "2019-12", "2020-01", "2020-02", "2020-06", "2020-07"]
    assert [m.base_fen for m in months[:4]] == [300000, 300000, 330000, 330000]   # +10 % each January
    assert months[2].personal_fen == 26400 and months[2].employer_fen == 52800
    assert months[-1].employer == "B"


def test_the_list_per_citizen(db: Session) -> None:
    chen = {t.code: availability(db, CHEN, t, NOW) for t in PROOF_TYPES.values()}
    si = chen["social_insurance_payment"]
    assert (si.has_records, si.earliest_month, si.latest_month) == (True, "2012-07", "2026-10")
    assert (si.default_from, si.default_to) == ("2025-11", "2026-10")               # the last 12 months
    assert chen["real_estate_record"].has_records is False                        # 无房
    assert chen["household_record"].has_records is True
    zhao = {t.code: availability(db, ZHAO, t, NOW) for t in PROOF_TYPES.values()}
    assert not any(a.has_records for c, a in zhao.items() if c != "household_record")
    assert zhao["social_insurance_payment"].earliest_month is None
    zhang_fund = availability(db, ZHANG, PROOF_TYPES["housing_fund_deposit"], NOW)
    assert (zhang_fund.earliest_month, zhang_fund.latest_month) == ("2006-01", "2018-03")  # retired: closed account
    assert availability(db, HUANG, PROOF_TYPES["household_record"], NOW).has_records is False


def test_periods_are_checked(db: Session) -> None:
    si = availability(db, WANG, PROOF_TYPES["social_insurance_payment"], NOW)
    assert resolve_period(si, None, None) == ("2025-11", "2026-10")
    assert resolve_period(si, "2019-01", "2020-12") == ("2019-01", "2020-12")
    assert resolve_period(si, None, "2020-12") == ("2020-01", "2020-12")
    for bad in (("2020-12", "2019-01"), ("2008-01", "2009-12"), ("2025-01", "2026-11"), ("2009-03", "2026-10")):
        with pytest.raises(ApiError) as err:
            resolve_period(si, *bad)
        assert err.value.code == "invalid_period", bad
    estate = availability(db, WANG, PROOF_TYPES["real_estate_record"], NOW)
    assert resolve_period(estate, None, None) == (None, None)
    with pytest.raises(ApiError):
        resolve_period(estate, "2020-01", None)


def test_social_insurance_over_a_period_with_a_gap(db: Session, tmp_path: Path) -> None:
    proof = PROOF_TYPES["social_insurance_payment"]
    content = build(db, WANG, proof, "2019-07", "2020-03", NOW)
    months = [row[0] for row in content.table_rows]
    assert months == ["2019-07", "2019-08", "2019-09", "2020-01", "2020-02", "2020-03"]  # 3 months between jobs
    summary = dict(content.summary_rows)
    assert summary["本期缴费月数"] == "6 个月" and summary["本期中断月数"] == "3 个月"
    assert {row[1] for row in content.table_rows} == {"齐齐哈尔龙沙运输有限公司", "蚌埠安达物流有限公司"}
    drawn = render_proof(content, "ABCD-EFGH-JKMN-PQR0", "https://verify.example/verify/d/x",
                         "https://verify.example/verify")
    assert drawn.pages == 1
    text = pdf_text(drawn.data, tmp_path)
    assert "社会保险个人缴费证明" in text and "王建国" in text and "2019-09" in text and "2019-10" not in text
    assert "ABCD-EFGH-JKMN-PQR0" in text and "第1页共1页" in text.replace(" ", "")


def test_a_long_record_runs_over_many_pages(db: Session, tmp_path: Path) -> None:
    proof = PROOF_TYPES["social_insurance_payment"]
    content = build(db, CHEN, proof, "2012-07", "2026-10", NOW)
    assert len(content.table_rows) == month_index("2026-10") - month_index("2012-07") + 1 == 172
    drawn = render_proof(content, "ABCD-EFGH-JKMN-PQR0", "https://v/verify/d/x", "https://v/verify")
    assert drawn.pages >= 4
    text = pdf_text(drawn.data, tmp_path)
    pages = text.split("\f")
    assert f"第{drawn.pages}页共{drawn.pages}页" in pages[drawn.pages - 1].replace(" ", "")
    assert all("年月" in page for page in pages[:drawn.pages])   # the table header on every page
    assert "2012-07" in pages[0] and "2026-10" in pages[drawn.pages - 1]
    assert "特此证明" in pages[drawn.pages - 1] and "特此证明" not in pages[0]
    x1, y1, x2, y2 = drawn.seal_box
    assert 0 < x1 < x2 < 595.3 and 0 < y1 < y2 < 841.9                          # on the A4 page


def test_real_estate_properties_or_none(db: Session, tmp_path: Path) -> None:
    content = build(db, ZHANG, PROOF_TYPES["real_estate_record"], None, None, NOW)
    assert content.has_records is True and len(content.table_rows) == 2 and "共 2 处" in content.paragraph
    text = pdf_text(render_proof(content, "ABCD-EFGH-JKMN-PQR0", "u", "v").data, tmp_path, layout=False)
    flat = text.replace(" ", "").replace("\n", "")
    assert "皖（2018）蚌埠市不动产权第0012345号" in flat and "车位" in flat   # long cells wrap, never cut
    none = build(db, CHEN, PROOF_TYPES["real_estate_record"], None, None, NOW)
    assert none.has_records is False and none.table_rows == [] and "无房" in none.paragraph
    assert "无房证明" in none.statement


def test_contribution_proofs_with_no_record(db: Session) -> None:
    for code in ("social_insurance_payment", "medical_insurance", "housing_fund_deposit"):
        content = build(db, ZHAO, PROOF_TYPES[code], None, None, NOW)
        assert content.has_records is False and not content.table_rows and "查无记录" in content.statement


def test_medical_and_housing_fund(db: Session) -> None:
    med = build(db, ZHANG, PROOF_TYPES["medical_insurance"], "2018-01", "2018-06", NOW)
    rows = {r[0]: r for r in med.table_rows}
    assert rows["2018-03"][1] == "蚌埠明华机械有限公司" and rows["2018-04"][5] == "免缴/统筹"  # retired in 2018-04
    fund = build(db, CHEN, PROOF_TYPES["housing_fund_deposit"], "2026-01", "2026-10", NOW)
    summary = dict(fund.summary_rows)
    assert summary["账户状态"] == "正常缴存" and len(fund.table_rows) == 10
    closed = build(db, ZHANG, PROOF_TYPES["housing_fund_deposit"], "2017-01", "2018-03", NOW)
    assert dict(closed.summary_rows)["账户状态"] == "封存"


def test_household_record(db: Session, tmp_path: Path) -> None:
    content = build(db, WANG, PROOF_TYPES["household_record"], None, None, NOW)
    fields = dict(content.header_rows)
    assert fields["户号"] == "230202020067890" and fields["民族"] == "满族" and fields["何地迁来"].startswith("黑龙江")
    text = pdf_text(render_proof(content, "ABCD-EFGH-JKMN-PQR0", "u", "v").data, tmp_path)
    assert "齐齐哈尔市龙沙区卜奎大街20号" in text
    none = build(db, HUANG, PROOF_TYPES["household_record"], None, None, NOW)
    assert none.has_records is False and "无" in none.paragraph


def test_seal_ca_from_the_cli_and_seals_without_the_ca_key(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    import io
    import json

    from fpdf import FPDF
    from pyhanko.keys import load_cert_from_pemder
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    from service_platform.cli import main as cli
    from service_platform.seal import SealKeeper, SealUnavailable, department_id

    folder = tmp_path / "seal"
    assert cli(["ca", "init", "--dir", str(folder)]) == 0
    assert cli(["ca", "init", "--dir", str(folder)]) == 1                       # never overwrites a CA
    assert cli(["ca", "issue", "--dir", str(folder), "--department", "蚌埠市医疗保障局"]) == 0
    issued = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["certificate"]
    key = folder / "seals" / f"{department_id('蚌埠市医疗保障局')}.key"
    assert Path(issued).exists() and (key.stat().st_mode & 0o077) == 0 and ((folder / "ca.key").stat().st_mode
                                                                            & 0o077) == 0
    (folder / "ca.key").unlink()                                                 # a production platform: seals only
    pdf = FPDF()
    pdf.add_page()
    keeper = SealKeeper(folder)
    sealed = keeper.sign(bytes(pdf.output()), "蚌埠市医疗保障局", box=(400, 80, 500, 180))
    [sig] = PdfFileReader(io.BytesIO(sealed.data)).embedded_signatures
    status = validate_pdf_signature(sig, ValidationContext(trust_roots=[load_cert_from_pemder(str(folder / "ca.pem"))]))
    assert status.intact and status.valid and status.trusted
    with pytest.raises(SealUnavailable):                                         # no seal, and none can be issued
        keeper.sign(bytes(pdf.output()), "蚌埠市民政局", box=(400, 80, 500, 180))
    with pytest.raises(SealUnavailable):
        SealKeeper(None).ca_pem()
