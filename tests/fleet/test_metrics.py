"""Prometheus ``/metrics`` of the real controller (fleet/controller/metrics.py): scraped and parsed with the client
library's parser; who may scrape (a viewer session/bearer, or the scrape token of ``--metrics-token-file``;
anonymous and wrong tokens are 401); labels never name a kiosk."""
from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families


def scrape(url: str, headers: dict[str, str]) -> dict[str, Any]:
    r = httpx.get(url + "/metrics", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(r.text)}


def value(families: dict[str, Any], name: str, sample: str | None = None, **labels: str) -> float:
    family = families[name]
    return sum(s.value for s in family.samples if (sample is None or s.name == sample)
               and all(s.labels.get(k) == v for k, v in labels.items()))


def test_metrics_through_the_real_controller(start_controller: Any, start_agents: Any, wait_for: Any,
                                             tmp_path: Path) -> None:
    token = secrets.token_urlsafe(24)
    token_file = tmp_path / "metrics.token"
    token_file.write_text(token + "\n")
    controller = start_controller("--metrics-token-file", str(token_file))
    agents = start_agents(3, "KSK-M-")
    wait_for(lambda: controller.get("/api/v1/summary")["online"] == 3, 15, what="three kiosks online")
    agents.cmd("set_paper", kiosk="KSK-M-0002", state="out")
    wait_for(lambda: controller.alerts(), 10, what="the paper-out alert")
    r = controller.post("/api/v1/kiosks/KSK-M-0001/commands", {"name": "out_of_service"})
    assert r.status_code == 202
    wait_for(lambda: controller.get(f"/api/v1/commands/{r.json()['id']}")["status"] == "succeeded", 10,
             what="the command result")

    # who may scrape: anonymous, a wrong token, a forged cookie → 401 (never a redirect to the login page)
    for headers in ({}, {"Authorization": "Bearer " + "x" * 32}, {"Cookie": "fleet_session=forged"}):
        refused = httpx.get(controller.url + "/metrics", headers=headers, timeout=10)
        assert refused.status_code == 401, (headers, refused.status_code)
        assert "fleet_kiosks" not in refused.text

    by_token = scrape(controller.url, {"Authorization": f"Bearer {token}"})
    by_viewer = scrape(controller.url, {"Authorization": f"Bearer {controller.token}"})
    assert set(by_token) == set(by_viewer)
    m = by_token
    assert value(m, "fleet_kiosks", state="online") == 3 and value(m, "fleet_kiosks", state="offline") == 0
    districts = {s.labels["district"] for s in m["fleet_kiosks"].samples}
    assert districts and all(d for d in districts)
    assert value(m, "fleet_alerts_open") >= 1 and {s.labels["severity"] for s in m["fleet_alerts_open"].samples} \
        >= {"critical", "major", "warning"}
    assert value(m, "fleet_kiosks_out_of_service") == 1
    assert value(m, "fleet_ingest_messages_received", "fleet_ingest_messages_received_total") > 0
    assert value(m, "fleet_ingest_dead_letters", "fleet_ingest_dead_letters_total") == 0
    assert value(m, "fleet_dead_letters_kept") == 0
    assert value(m, "fleet_command_duration_seconds", "fleet_command_duration_seconds_count") >= 1
    assert value(m, "fleet_command_duration_seconds", "fleet_command_duration_seconds_bucket", le="+Inf") >= 1
    assert value(m, "fleet_broker_connected") == 1
    # small label sets: no kiosk id anywhere in the output
    raw = httpx.get(controller.url + "/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10).text
    assert "KSK-M-" not in raw
    label_names = {k for f in m.values() for s in f.samples for k in s.labels}
    assert label_names <= {"district", "state", "severity", "controller", "status", "le"}


def test_without_a_token_file_only_a_session_may_scrape(start_controller: Any) -> None:
    controller = start_controller()
    assert httpx.get(controller.url + "/metrics", timeout=10).status_code == 401
    assert httpx.get(controller.url + "/metrics", headers={"Authorization": "Bearer x"}, timeout=10).status_code == 401
    assert "fleet_ingest_messages_received" in scrape(controller.url, {"Authorization": f"Bearer {controller.token}"})
