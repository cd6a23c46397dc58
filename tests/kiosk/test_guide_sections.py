"""The complete guide in sections (kiosk/guide_sections.py) from what the real platform returns: legal basis,
steps, time limits, fees, FAQs, online depth, places with hours and phone, who may apply as an agent, and sample
filled forms when the platform has them — in Chinese and English."""
from __future__ import annotations

import httpx

from kiosk.guide_sections import guide_sections
from kiosk.i18n import Translator
from kiosk.platform_client import ServiceDetail


def detail_of(platform_server, code: str) -> ServiceDetail:
    r = httpx.get(f"{platform_server.url}/api/v1/services/{code}", timeout=10)
    assert r.status_code == 200, r.text
    return ServiceDetail.from_json(r.json())


def test_every_part_of_the_guide_has_its_section(platform_server):
    detail = detail_of(platform_server, "id-card-renewal")
    zh = Translator("zh_CN")
    sections = {s.key: s for s in guide_sections(detail, zh.t, "zh_CN")}
    assert list(sections) == ["overview", "conditions", "materials", "steps", "time_limits", "fees", "basis",
                              "places", "faqs", "samples"]
    text = {k: "\n".join(s.lines) for k, s in sections.items()}
    assert "网上受理（最多跑一次）" in text["overview"] and "须本人办理" in text["overview"]
    assert "《中华人民共和国居民身份证法》" in text["basis"]
    assert "法定办结时限：60个工作日" in text["time_limits"] and "承诺办结时限：15个工作日" in text["time_limits"]
    assert "20.00" in text["fees"] and "工本费" in text["fees"]
    assert "咨询电话：12345" in text["places"] and "办公时间：" in text["places"]
    assert text["faqs"].startswith("问：") and "\n答：" in text["faqs"]
    assert "【居民身份证申领登记表（示范文本）】" in text["samples"] and "申领原因：有效期满换领" in text["samples"]
    assert len(sections["steps"].lines) == 3

    senior = {s.key: s for s in guide_sections(detail_of(platform_server, "senior-card"), zh.t, "zh_CN")}
    assert any("可以代办" in line for line in senior["overview"].lines)
    assert senior["time_limits"].lines and senior["fees"].lines == ["不收费"]

    en = Translator("en")
    english = {s.key: s for s in guide_sections(detail, en.t, "en")}
    assert english["basis"].title == "Legal basis" and english["samples"].lines[0].startswith(
        "【Resident ID card application (sample)】")
    no_samples = guide_sections(detail_of(platform_server, "traffic-violation-query"), zh.t, "zh_CN")
    assert "samples" not in {s.key for s in no_samples}
