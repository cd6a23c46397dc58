"""Maintenance mode as the fleet sees it: while a technician works, the kiosk's service is ``maintenance`` on the
controller, and every step (card accepted, opened, self-test, closed) is an event there with the card masked —
never the number. Through a real broker, controller, platform and kiosk core."""
from __future__ import annotations

import queue
from typing import Any, Callable

TECHNICIAN = ("chen", "520302199002144027")
PIN = "135790"


def test_maintenance_is_seen_and_every_step_reported(kiosk: Any, start_controller: Any, list_technician: Any,
                                                      wait_for: Callable[..., Any]) -> None:
    list_technician(kiosk.kiosk_id, TECHNICIAN[1], PIN)
    controller = start_controller()
    wait_for(lambda: controller.kiosk(kiosk.kiosk_id), timeout=20, what="the kiosk's birth")

    kiosk.maintenance.begin()
    kiosk.devices.simulators["idcard"].control("place_card", identity=TECHNICIAN[0])
    wait_for(lambda: kiosk.maintenance.state == "pin", timeout=20, what="the technician's card accepted")
    done: "queue.Queue[Any]" = queue.Queue()
    kiosk.maintenance.submit_pin(PIN, on_result=done.put, on_error=done.put)
    assert done.get(timeout=20) is True
    wait_for(lambda: controller.kiosk(kiosk.kiosk_id)["service"] == "maintenance", timeout=20,
             what="the controller sees the kiosk under maintenance")
    assert kiosk.maintenance.self_test("internal").ok
    kiosk.maintenance.exit()
    wait_for(lambda: controller.kiosk(kiosk.kiosk_id)["service"] == "in_service", timeout=20,
             what="back in service on the controller")

    def reported() -> list[dict[str, Any]] | None:
        got = controller.get(f"/api/v1/kiosks/{kiosk.kiosk_id}/events", limit=200)
        codes = {e["code"] for e in got}
        return got if {"maintenance_begin", "maintenance_card_accepted", "maintenance_opened", "maintenance_closed",
                       "self_test_passed"} <= codes else None

    got = wait_for(reported, timeout=20, what="the maintenance events on the controller")
    opened = next(e for e in got if e["code"] == "maintenance_opened")
    assert opened["device"] == "maintenance" and "5203**********4027" in opened["text"]
    assert all(TECHNICIAN[1] not in e["text"] for e in got)
