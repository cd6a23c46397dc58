"""Unit tests of search ranking (no server)."""
from __future__ import annotations

from service_platform.search import SearchDoc, build_keys, normalize_query, rank, score


def doc(name: str, keywords: tuple[str, ...] = (), department: str = "", name_en: str = "") -> SearchDoc:
    return SearchDoc.build(name, name_en, department, keywords)


def test_keys_are_precomputed_per_segment() -> None:
    assert build_keys("住房公积金提取", ["公积金"]) == ("zfgjjtq|gjj", "zhu fang gong ji jin ti qu|gong ji jin")
    assert build_keys("户口迁入登记") == ("hkqrdj", "hu kou qian ru deng ji")
    initials, full = build_keys("居民身份证换领（有效期满）")
    assert initials == "jmsfzhlyxqm" and "（" not in full


def test_rank_order_exact_then_prefix_then_initials_then_content() -> None:
    exact = doc("公积金")
    prefix = doc("公积金缴存证明")
    contains = doc("住房公积金提取")
    initials_only = doc("工具借用登记")  # gong ju jie: "gjj" by initials only
    content_only = doc("退休审批", keywords=("可用公积金",))
    department_only = doc("贷款进度查询", department="公积金管理中心")
    unrelated = doc("户口迁入登记")
    docs = [unrelated, department_only, content_only, initials_only, contains, prefix, exact]
    ranked = [d.name for _s, d in rank("公积金", [(d, d) for d in docs])]
    assert ranked == ["公积金", "公积金缴存证明", "住房公积金提取", "退休审批", "贷款进度查询"]
    assert score("gjj", initials_only) > 0 and score("gjj", unrelated) == 0


def test_pinyin_initials_and_full_pinyin() -> None:
    d = doc("住房公积金提取", keywords=("公积金",))
    assert score("zfgjj", d) > score("gjj", d) > score("贷款", d) == 0
    assert score("gongjijin", d) > 0 and score("zhufang", d) > score("gongjijin", d)
    assert score("ongji", d) == 0  # full pinyin matches only from a syllable boundary
    assert score("gong ji jin", d) == score("gongjijin", d)
    assert score("GJJ", d) == score("ｇｊｊ", d) == score("gjj", d)


def test_multi_word_queries_need_every_word() -> None:
    d = doc("住房公积金提取", keywords=("公积金", "提取"))
    assert score("公积金 提取", d) > 0
    assert score("公积金 户口", d) == 0


def test_english_and_department() -> None:
    d = doc("异地就医备案", department="蚌埠市医疗保障局", name_en="Registration for medical treatment")
    assert score("medical", d) > 0 and score("医疗保障局", d) > 0
    assert score("医疗保障局", d) < score("异地就医", d)


def test_single_letter_does_not_match_pinyin() -> None:
    assert score("h", doc("户口迁入登记")) == 0
    assert normalize_query("  Gong  JI ") == "gong ji"
