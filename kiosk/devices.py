"""The device manager: builds each device named in the profile through the driver registry, starts its simulator
when the profile says ``simulate: true`` (the real driver then talks to the simulator), and reports statuses.

It is the one place the rest of the kiosk (use-cases, the fleet agent) gets devices from.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

from device_profiles.loader import DeviceConfig, Profile
from drivers import registry
from drivers.base import Device, DeviceState, DeviceStatus
from drivers.errors import DeviceError
from drivers.sim.process import SimulatorProcess
from drivers.sim.wiring import settings_from_endpoints, simulator_for

log = logging.getLogger(__name__)


class DeviceManager:
    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.devices: dict[str, Device] = {}
        self.simulators: dict[str, SimulatorProcess] = {}
        self.start_errors: dict[str, DeviceError] = {}

    def _build(self, config: DeviceConfig) -> Device:
        settings: dict[str, Any] = dict(config.settings)
        if config.simulate:
            sim_kind, args = simulator_for(config.kind)
            sim = SimulatorProcess(sim_kind, *args)
            self.simulators[config.kind] = sim
            settings.update(settings_from_endpoints(config.kind, sim.endpoints))
            log.info("started simulator %s (pid %d) for %s", sim_kind, sim.pid, config.kind)
        cls = registry.resolve(config.kind, config.driver)
        return cls(**settings)

    def start(self) -> None:
        """Build and open every device. A device that cannot open is kept (its status says why) so the kiosk can
        run degraded and drivers can recover when the device comes back."""
        for kind, config in self.profile.devices.items():
            device = self._build(config)
            self.devices[kind] = device
            try:
                device.open()
            except DeviceError as exc:
                self.start_errors[kind] = exc
                log.warning("device %s did not open: %s", kind, exc.code)

    def stop(self) -> None:
        for kind, device in list(self.devices.items()):
            try:
                device.close()
            except Exception:  # closing must never stop the others from closing
                log.exception("closing %s failed", kind)
        for sim in self.simulators.values():
            sim.stop()
        self.simulators.clear()

    def get(self, kind: str) -> Device | None:
        return self.devices.get(kind)

    def status(self, kind: str) -> DeviceStatus:
        device = self.devices.get(kind)
        if device is None:
            return DeviceStatus(kind=kind, device=DeviceState.NO_DEVICE, error_code="not_configured")
        try:
            if not device.is_open:
                device.open()
            return device.status()
        except DeviceError as exc:
            return DeviceStatus(kind=kind, device=DeviceState.NO_DEVICE if exc.code == "no_device"
                                else DeviceState.HARDWARE_ERROR, error_code=exc.code)

    def statuses(self) -> dict[str, DeviceStatus]:
        return {kind: self.status(kind) for kind in self.profile.devices}

    def self_test(self) -> dict[str, DeviceStatus]:
        results: dict[str, DeviceStatus] = {}
        for kind, device in self.devices.items():
            try:
                results[kind] = device.self_test()
            except DeviceError as exc:
                results[kind] = DeviceStatus(kind=kind, device=DeviceState.HARDWARE_ERROR, error_code=exc.code)
        return results

    def simulator_control(self, kind: str, cmd: str, **args: Any) -> Mapping[str, Any]:
        """Send a command to a device's simulator (demo controls and tests); raises KeyError if not simulated."""
        return self.simulators[kind].control(cmd, **args)
