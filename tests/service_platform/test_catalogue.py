"""Catalogue reads and search against the real server."""
from __future__ import annotations

import httpx
import pytest

EXPECTED_CATEGORIES = {"birth", "school", "work", "housing", "marriage", "retirement", "business", "elderly",
                       "social_assistance", "vehicle"}


def all_services(client: httpx.Client, **params: str) -> dict:
    r = client.get("/api/v1/services", params={"limit": 100, **params})
    assert r.status_code == 200, r.text
    return r.json()


def test_categories_are_life_events(public: httpx.Client) -> None:
    r = public.get("/api/v1/categories")
    assert r.status_code == 200
    items = r.json()["items"]
    codes = {c["code"] for c in items}
    assert EXPECTED_CATEGORIES <= codes
    births = next(c for c in items if c["code"] == "birth")
    assert births["name_zh"] == "出生" and births["name_en"] and births["service_count"] >= 3


def test_catalogue_is_large_and_every_service_has_a_complete_guide(public: httpx.Client) -> None:
    data = all_services(public)
    assert data["total"] >= 32
    assert len(data["items"]) == data["total"]
    codes = [s["code"] for s in data["items"]]
    assert len(set(codes)) == len(codes)
    for summary in data["items"]:
        assert summary["name"] and summary["name_en"] and summary["department"].startswith("蚌埠市")
        assert 1 <= summary["online_depth"] <= 4
        detail = public.get(f"/api/v1/services/{summary['code']}").json()
        assert detail["code"] == summary["code"]
        assert detail["materials"], summary["code"]
        for m in detail["materials"]:
            assert m["name"] and m["originals"] >= 0 and m["copies"] >= 0 and isinstance(m["required"], bool)
        assert any(m["required"] for m in detail["materials"]), summary["code"]
        assert detail["legal_days"] >= detail["promised_days"] >= 0, summary["code"]
        assert detail["fee_fen"] >= 0 and detail["basis"] and detail["conditions"]
        assert detail["places"] and all(p["address"] and p["hours"] and p["phone"] for p in detail["places"])
        assert 1 <= len(detail["faqs"]) <= 3 and all(f["q"] and f["a"] for f in detail["faqs"])


def test_fees_and_e_certificates(public: httpx.Client) -> None:
    licence = public.get("/api/v1/services/driving-licence-renewal").json()
    assert licence["fee_fen"] == 1000 and licence["category"] == "vehicle"
    assert {"机动车驾驶证", "居民身份证"} <= {m["e_cert_type"] for m in licence["materials"]}
    fees = [s["fee_fen"] for s in all_services(public)["items"]]
    assert sum(1 for f in fees if f == 0) > len(fees) / 2  # most services are free


def test_detail_404_uses_the_error_shape(public: httpx.Client) -> None:
    r = public.get("/api/v1/services/no-such-service")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found" and r.json()["error"]["message"]


def test_unknown_route_and_bad_query_use_the_error_shape(public: httpx.Client) -> None:
    r = public.get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = public.get("/api/v1/services", params={"limit": 0})
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_failed"


def names(client: httpx.Client, q: str, **params: str) -> list[str]:
    return [s["name"] for s in all_services(client, q=q, **params)["items"]]


@pytest.mark.parametrize("q", ["公积金", "gjj", "gongjijin", "GJJ", "gong ji jin"])
def test_search_housing_fund(public: httpx.Client, q: str) -> None:
    found = names(public, q)
    assert len(found) >= 3
    assert all("公积金" in n for n in found), found


@pytest.mark.parametrize("q", ["hukou", "hk", "户口"])
def test_search_household_registration(public: httpx.Client, q: str) -> None:
    found = names(public, q)
    assert found[0] == "户口迁入登记"
    assert {"户口迁入登记", "户口迁出登记"} <= set(found[:4])


def test_search_ranks_exact_name_first(public: httpx.Client) -> None:
    assert names(public, "住房公积金提取")[0] == "住房公积金提取"
    assert names(public, "不动产")[0].startswith("不动产")
    assert names(public, "公积金 提取") == ["住房公积金提取"]


def test_search_by_keyword_department_and_english(public: httpx.Client) -> None:
    assert "最低生活保障申请" in names(public, "低保")
    assert "驾驶证期满换证" in names(public, "驾照")
    assert "异地就医备案" in names(public, "蚌埠市医疗保障局")
    assert "住房公积金提取" in names(public, "provident fund")


def test_category_filter_and_paging(public: httpx.Client) -> None:
    vehicle = all_services(public, category="vehicle")
    assert vehicle["total"] >= 2 and all("vehicle" in s["categories"] for s in vehicle["items"])
    births = all_services(public, category="birth")
    assert {"出生登记", "生育登记", "新生儿参加城乡居民医保"} <= {s["name"] for s in births["items"]}
    assert all_services(public, category="housing", q="gjj")["total"] == 3
    assert all_services(public, category="no-such-category")["total"] == 0
    page1 = public.get("/api/v1/services", params={"limit": 5, "offset": 0}).json()
    page2 = public.get("/api/v1/services", params={"limit": 5, "offset": 5}).json()
    assert len(page1["items"]) == len(page2["items"]) == 5 and page1["total"] == page2["total"] >= 32
    assert not {s["code"] for s in page1["items"]} & {s["code"] for s in page2["items"]}


def test_search_miss_is_empty(public: httpx.Client) -> None:
    assert all_services(public, q="宇宙飞船")["total"] == 0


def test_health(public: httpx.Client) -> None:
    for path in ("/healthz", "/api/v1/healthz"):
        r = public.get(path)
        assert r.status_code == 200 and r.json()["status"] == "ok" and r.json()["version"]


def test_rating_tags_are_public(public: httpx.Client) -> None:
    data = public.get("/api/v1/rating-tags").json()
    good = {t["zh"] for t in data["good"]}
    bad = {t["zh"] for t in data["bad"]}
    assert {"办事快捷", "态度热情", "一次办成"} <= good
    assert {"等待时间长", "材料要求多", "操作复杂"} <= bad
    assert all(t["code"] and t["en"] for t in data["good"] + data["bad"])
