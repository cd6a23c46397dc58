"""差评整改: a ★1–2 rating from a kiosk lands in the responsible department's queue (real server, both databases),
staff assign / note / close it, overdue items are flagged; security rules (hostile): another department's staff
cannot read or close an item, kiosk and citizen credentials are not staff credentials, the comment never reaches the
log or the public summary; the public summary's small-cell rule."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from service_platform.models import RatingFollowUp
from service_platform.routes.staff import MIN_CELL, suppress

RATINGS = "/api/v1/ratings"
QUEUE = "/api/v1/staff/rating-followups"
HPF = "蚌埠市住房公积金管理中心"        # SP20261027000102 is an hpf-withdrawal application
POLICE = "蚌埠市公安局龙子湖分局"
COMMENT = "柜台说材料不全让我再跑一趟 secret-comment-7731"


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def add_staff(platform: Any, name: str, department: str) -> dict[str, str]:
    out = subprocess.run([sys.executable, "-m", "service_platform.cli", "staff", "add", "--db", platform.db_url,
                          "--name", name, "--department", department], capture_output=True, check=True, timeout=60)
    token = json.loads(out.stdout)["token"]
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def staff(platform: Any) -> dict[str, dict[str, str]]:
    suffix = uuid.uuid4().hex[:6]
    return {"hpf": add_staff(platform, f"hpf-{suffix}", HPF), "police": add_staff(platform, f"pol-{suffix}", POLICE)}


def rate(kiosk: httpx.Client, **body: Any) -> dict[str, Any]:
    full = {"target_type": "application", "target_id": "SP20261027000102", "stars": 1, "tags": ["multiple_trips"],
            "comment": COMMENT, **body}
    r = kiosk.post(RATINGS, json=full, headers=key())
    assert r.status_code == 201, r.text
    return r.json()


def item_of(public: httpx.Client, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    r = public.get(QUEUE, headers=headers, params={"limit": 200, **params})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_bad_rating_goes_from_kiosk_to_closed(kiosk: httpx.Client, public: httpx.Client,
                                              staff: dict[str, dict[str, str]]) -> None:
    rated = rate(kiosk)
    rate(kiosk, stars=4, tags=["fast"], comment=None)  # a good one opens nothing
    mine = [i for i in item_of(public, staff["hpf"], status="open") if i["target_id"] == "SP20261027000102"
            and i["rated_at"] == rated["created_at"]]
    assert len(mine) == 1
    item = mine[0]
    assert item["department"] == HPF and item["service_code"] == "hpf-withdrawal" and item["stars"] == 1
    assert item["tags"] == ["multiple_trips"] and item["comment"] == COMMENT and item["overdue"] is False
    due = dt.datetime.fromisoformat(item["due_at"]) - dt.datetime.fromisoformat(item["rated_at"])
    assert due == dt.timedelta(days=15)
    url = f"{QUEUE}/{item['id']}"
    # closing needs the action taken
    r = public.patch(url, headers=staff["hpf"], json={"close": True})
    assert r.status_code == 422 and r.json()["error"]["code"] == "action_required"
    r = public.patch(url, headers=staff["hpf"], json={"assignee": "王芳"})
    assert r.status_code == 200 and r.json()["status"] == "assigned" and r.json()["assignee"] == "王芳"
    assert any(i["id"] == item["id"] for i in item_of(public, staff["hpf"], assignee="王芳"))
    r = public.patch(url, headers=staff["hpf"], json={"action_taken": "已电话回访，材料清单已更新", "close": True})
    body = r.json()
    assert r.status_code == 200 and body["status"] == "closed" and body["closed_at"] and not body["overdue"]
    assert body["updated_by"].startswith("hpf-")
    r = public.patch(url, headers=staff["hpf"], json={"assignee": "李四"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_closed"
    assert any(i["id"] == item["id"] for i in item_of(public, staff["hpf"], status="closed"))
    assert public.get("/api/v1/staff/me", headers=staff["hpf"]).json()["department"] == HPF


def test_another_department_cannot_read_or_close(kiosk: httpx.Client, public: httpx.Client,
                                                 staff: dict[str, dict[str, str]]) -> None:
    rate(kiosk, stars=2)
    item = item_of(public, staff["hpf"], status="open")[-1]
    url = f"{QUEUE}/{item['id']}"
    assert all(i["department"] == POLICE for i in item_of(public, staff["police"]))
    assert item["id"] not in {i["id"] for i in item_of(public, staff["police"])}
    for answer in (public.get(url, headers=staff["police"]),
                   public.patch(url, headers=staff["police"], json={"action_taken": "x", "close": True})):
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
        assert COMMENT not in answer.text
    # the item is untouched
    assert public.get(url, headers=staff["hpf"]).json()["status"] == "open"


def test_kiosk_and_citizen_credentials_are_not_staff_credentials(
        kiosk: httpx.Client, public: httpx.Client, open_session: Callable[[str], dict[str, str]],
        staff: dict[str, dict[str, str]], platform: Any) -> None:
    citizen = open_session("340302195803172018")  # a live citizen bearer token
    for client, headers in ((public, {}), (kiosk, {}), (kiosk, citizen), (public, citizen),
                            (public, {"Authorization": "Bearer stf_forged-token-000000000000000000"}),
                            (public, {"Authorization": "Basic aGVsbG86d29ybGQ="})):
        for method, url in (("GET", QUEUE), ("GET", "/api/v1/staff/me"), ("GET", f"{QUEUE}/1"),
                            ("PATCH", f"{QUEUE}/1")):
            r = client.request(method, url, headers=headers, json={"close": True} if method == "PATCH" else None)
            assert r.status_code == 401 and r.json()["error"]["code"] == "staff_unauthorized", (method, url, r.text)
    # a disabled staff member is refused from the next request on
    extra = add_staff(platform, f"tmp-{uuid.uuid4().hex[:6]}", HPF)
    assert public.get(QUEUE, headers=extra).status_code == 200
    name = public.get("/api/v1/staff/me", headers=extra).json()["name"]
    subprocess.run([sys.executable, "-m", "service_platform.cli", "staff", "disable", "--db", platform.db_url,
                    "--name", name], check=True, capture_output=True, timeout=60)
    assert public.get(QUEUE, headers=extra).status_code == 401


def test_overdue_items_are_flagged(kiosk: httpx.Client, public: httpx.Client, platform: Any,
                                   staff: dict[str, dict[str, str]]) -> None:
    rate(kiosk, stars=1, comment=None, tags=["long_wait"])
    item = item_of(public, staff["hpf"], status="open")[-1]
    with Session(platform.engine()) as db:  # as if rated 16 days ago
        row = db.get(RatingFollowUp, item["id"])
        assert row is not None
        row.due_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
        db.commit()
    late = item_of(public, staff["hpf"], overdue="true")
    assert item["id"] in {i["id"] for i in late} and all(i["overdue"] for i in late)
    assert item["id"] not in {i["id"] for i in item_of(public, staff["hpf"], overdue="false")}
    assert public.get(QUEUE, headers=staff["hpf"]).json()["overdue"] >= 1


def test_the_comment_is_never_logged(kiosk: httpx.Client, platform: Any) -> None:
    rate(kiosk)
    assert platform.log_path is not None
    assert "secret-comment-7731" not in platform.log_path.read_text(encoding="utf-8", errors="replace")


def test_public_summary_has_no_personal_data_and_suppresses_small_cells(kiosk: httpx.Client,
                                                                        public: httpx.Client) -> None:
    for stars in (5, 5, 5, 5, 5, 5, 4, 1):
        rate(kiosk, target_type="service", target_id="business-licence-reissue", stars=stars,
             tags=["fast", "张三 13800000000"] if stars == 5 else ["long_wait"], comment="个人意见 secret-comment-7731")
    rate(kiosk, target_type="service", target_id="subsistence-allowance", stars=2, comment="x")
    r = public.get("/api/v1/public/ratings/summary")  # no credentials at all
    assert r.status_code == 200, r.text
    assert "secret-comment-7731" not in r.text and "13800000000" not in r.text and "KSK-" not in r.text
    data = r.json()
    assert data["min_cell"] == MIN_CELL
    rows = {row["service_code"]: row for row in data["services"]}
    biz = rows["business-licence-reissue"]
    assert biz["total"] >= 8 and biz["department"] == "蚌埠市市场监督管理局"
    assert all(v is None or v >= MIN_CELL for v in biz["stars"].values())
    assert biz["stars"]["1"] is None and biz["stars"]["4"] is None  # 1 and 1: suppressed
    assert [t["code"] for t in biz["top_tags"]] == ["fast"] and biz["top_tags"][0]["count"] >= 6
    small = rows["subsistence-allowance"]
    assert small["total"] is None and set(small["stars"].values()) == {None} and small["low_share"] is None


def test_suppression_cannot_be_undone_from_the_total() -> None:
    row, share = suppress({1: 3, 2: 0, 3: 10, 4: 10, 5: 20})
    hidden = [s for s, v in row.items() if v is None]
    assert 1 in hidden and sum({1: 3, 2: 0, 3: 10, 4: 10, 5: 20}[s] for s in hidden) >= MIN_CELL
    assert share is False  # ★1–2 = 3 would be disclosed
    row, share = suppress({1: 6, 2: 7, 3: 10, 4: 10, 5: 20})
    assert None not in row.values() and share is True
    row, share = suppress({1: 0, 2: 0, 3: 10, 4: 10, 5: 20})
    assert share is True and row[3] == 10  # nobody is disclosed by zeros
    row, share = suppress({1: 2, 2: 0, 3: 0, 4: 0, 5: 30})
    assert row[5] is None and share is False
