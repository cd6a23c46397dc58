"""Virtual kiosks: what a kiosk's device manager and core would report, with knobs (paper out, a device fault, a
session) — the status source and command handlers behind real :class:`FleetAgent` objects in tests of the controller
and in the demo fleet. Statuses have the shape of ``drivers.base.DeviceStatus.to_dict()``."""
from __future__ import annotations

import hashlib
import threading
from typing import Any, Callable, Mapping

from fleet.agent.agent import CommandResult

#: (district, place, short name) — Bengbu (340300), real districts, made-up service points
DISTRICTS = [("龙子湖区", "东海社区党群服务中心一楼", "东海社区"), ("蚌山区", "燕山乡便民服务中心", "燕山乡"),
             ("禹会区", "张公山街道政务服务站", "张公山街道"), ("淮上区", "小蚌埠镇为民服务中心", "小蚌埠镇"),
             ("怀远县", "城关镇政务服务大厅", "怀远城关"), ("五河县", "城关镇社区服务中心", "五河城关")]


class VirtualKiosk:
    def __init__(self, kiosk_id: str, index: int = 0) -> None:
        district, place, short = DISTRICTS[index % len(DISTRICTS)]
        self.kiosk_id = kiosk_id
        self.district = district
        self.name = f"{short}政务服务自助终端 {index // len(DISTRICTS) + 1:02d}号机"
        self.location = f"蚌埠市{district}{place}"
        self._lock = threading.Lock()
        self.devices: dict[str, dict[str, Any]] = {
            "idcard": {"kind": "idcard", "device": "online", "media": "not_present", "paper": None,
                       "error_code": None, "detail": "", "counters": {"cards_read": 0, "errors": 0}},
            "receipt_printer": {"kind": "receipt_printer", "device": "online", "media": None, "paper": "full",
                                "error_code": None, "detail": "", "counters": {"receipts_printed": 0,
                                                                               "jobs_failed": 0}},
        }
        self.sessions = 0
        self.service = "in_service"
        self.announcement: str | None = None
        self.profile_hash = hashlib.sha256(kiosk_id.encode()).hexdigest()[:16]
        self.restarts = 0
        self.on_change: Callable[[], None] = lambda: None

    # what the agent reads --------------------------------------------------------------------------------------
    def statuses(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: {**v, "counters": dict(v["counters"])} for k, v in self.devices.items()}

    def app(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {"service": self.service, "counters": {"sessions": self.sessions}}
            if self.announcement:
                out["announcement"] = self.announcement
            return out

    def identity(self, app_version: str = "0.1.0") -> dict[str, Any]:
        return {"name": self.name, "district": self.district, "location": self.location,
                "app_version": app_version, "profile_hash": self.profile_hash}

    # knobs ----------------------------------------------------------------------------------------------------
    def set_paper(self, state: str) -> dict[str, Any]:
        """``full``/``low``/``out`` (the XFS names the printer driver reports)."""
        with self._lock:
            self.devices["receipt_printer"]["paper"] = state
        self.on_change()
        return {"paper": state}

    def set_device(self, kind: str, state: str = "online", error_code: str | None = None,
                   detail: str = "") -> dict[str, Any]:
        with self._lock:
            dev = self.devices[kind]
            dev.update(device=state, error_code=error_code, detail=detail)
        self.on_change()
        return {"kind": kind, "device": state}

    def serve_citizen(self, receipts: int = 1, card: bool = True) -> dict[str, Any]:
        with self._lock:
            self.sessions += 1
            if card:
                self.devices["idcard"]["counters"]["cards_read"] += 1
            self.devices["receipt_printer"]["counters"]["receipts_printed"] += receipts
        self.on_change()
        return {"sessions": self.sessions}

    # command handlers -----------------------------------------------------------------------------------------
    def handlers(self) -> dict[str, Callable[[Mapping[str, Any]], CommandResult]]:
        def out_of_service(args: Mapping[str, Any]) -> CommandResult:
            with self._lock:
                self.service = "out_of_service"
            self.on_change()
            return CommandResult.done("out of service")

        def back_in_service(args: Mapping[str, Any]) -> CommandResult:
            with self._lock:
                self.service = "in_service"
            self.on_change()
            return CommandResult.done("in service")

        def show_announcement(args: Mapping[str, Any]) -> CommandResult:
            text = str(args.get("text", "")).strip()
            if not text:
                return CommandResult.failed("empty announcement")
            with self._lock:
                self.announcement = text[:200]
            self.on_change()
            return CommandResult.done("shown")

        def restart_app(args: Mapping[str, Any]) -> CommandResult:
            self.restarts += 1
            return CommandResult.done("restart scheduled")

        def push_profile(args: Mapping[str, Any]) -> CommandResult:
            text = str(args.get("profile", ""))
            digest = hashlib.sha256(text.encode()).hexdigest()
            if args.get("sha256") and args["sha256"] != digest:
                return CommandResult.failed("checksum mismatch")
            if "devices:" not in text:
                return CommandResult.failed("not a device profile")
            self.profile_hash = digest[:16]
            return CommandResult.done("profile stored; applies at next restart", profile_hash=digest[:16])

        return {"out_of_service": out_of_service, "back_in_service": back_in_service,
                "show_announcement": show_announcement, "restart_app": restart_app, "push_profile": push_profile}
