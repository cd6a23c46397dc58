"""A set of devices opened from their configuration: each device is built through the driver registry, its
simulator started first when the configuration says ``simulate: true`` (the real driver then talks to the
simulator), and statuses are reported. The kiosk's device manager (``kiosk/devices.py``) and the technicians' tool
(``kiosk-profile probe|self-test``) both use it.

Unplug and replug: drivers reconnect by themselves (the ID reader reopens its port, the receipt printer its socket,
at the next call), so a device that comes back is used again without restarting the kiosk — as long as it comes
back at the same address. Real serial devices get stable names from udev (``/dev/kiosk-idcard``); a simulated one
gets the same from us: the driver is pointed at ``<data_dir>/sim-dev/<kind>``, a symlink to the simulator's pty, and
:meth:`DeviceSet.replug` starts the simulator again and points that link at its new pty; a TCP simulator (the
receipt printer) is started again on the same port. :meth:`DeviceSet.unplug` kills a simulator (SIGKILL, like a
pulled cable).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping, Protocol

from drivers import registry
from drivers.base import Device, DeviceState, DeviceStatus
from drivers.errors import DeviceError
from drivers.sim.process import SimulatorProcess
from drivers.sim.wiring import settings_from_endpoints, simulator_for

log = logging.getLogger(__name__)


class DeviceConfigLike(Protocol):
    """What a device set needs of one device's configuration (``device_profiles.loader.DeviceConfig``)."""

    kind: str
    driver: str
    settings: Mapping[str, Any]
    simulate: bool


class DeviceSet:
    """The devices of one configuration (kind → config), built through the driver registry (see the module
    docstring). ``data_dir`` holds the stable names of simulated serial devices (``<data_dir>/sim-dev``)."""

    def __init__(self, configs: Mapping[str, DeviceConfigLike], data_dir: str | os.PathLike[str]) -> None:
        self.configs = configs
        self.devices: dict[str, Device] = {}
        self.simulators: dict[str, SimulatorProcess] = {}
        self.start_errors: dict[str, DeviceError] = {}
        #: the endpoints each simulated driver was pointed at (stable across a replug)
        self.sim_endpoints: dict[str, dict[str, Any]] = {}
        #: folder of the stable names of simulated serial devices (as udev's /dev/kiosk-* for real ones)
        self.sim_dev_dir = Path(data_dir) / "sim-dev"

    def _build(self, config: DeviceConfigLike) -> Device:
        settings: dict[str, Any] = dict(config.settings)
        if config.simulate:
            sim_kind, args = simulator_for(config.kind, config.driver)
            sim = SimulatorProcess(sim_kind, *args)
            self.simulators[config.kind] = sim
            endpoints = self._stable_endpoints(config.kind, sim.endpoints)
            self.sim_endpoints[config.kind] = endpoints
            settings.update(settings_from_endpoints(config.kind, endpoints, config.driver))
            log.info("started simulator %s (pid %d) for %s", sim_kind, sim.pid, config.kind)
        cls = registry.resolve(config.kind, config.driver)
        return cls(**settings)

    def _stable_endpoints(self, kind: str, endpoints: Mapping[str, Any]) -> dict[str, Any]:
        """A simulator's endpoints with its pty behind a stable name: ``<data_dir>/sim-dev/<kind>`` → the pty."""
        stable = dict(endpoints)
        if endpoints.get("pty"):
            link = self.sim_dev_dir / kind
            self.sim_dev_dir.mkdir(parents=True, exist_ok=True)
            tmp = link.with_name(f".{kind}.new")
            tmp.unlink(missing_ok=True)
            os.symlink(endpoints["pty"], tmp)
            os.replace(tmp, link)          # the name never dangles half-made
            stable["pty"] = str(link)
        return stable

    # unplug / replug (simulated devices) ----------------------------------------------------------------------------
    def unplug(self, kind: str) -> None:
        """Pull a simulated device's plug: its simulator is killed (SIGKILL) and its stable name removed (as udev
        removes /dev/kiosk-idcard). The kiosk goes on; the driver reports the device missing until :meth:`replug`."""
        sim = self.simulators[kind]
        sim.kill()
        endpoints = self.sim_endpoints.get(kind, {})
        if endpoints.get("pty"):
            Path(endpoints["pty"]).unlink(missing_ok=True)
        log.warning("simulated %s unplugged (simulator pid %d killed)", kind, sim.pid)

    def replug(self, kind: str) -> SimulatorProcess:
        """Plug a simulated device in again: its simulator (killed, crashed or still running) is started anew at
        the same address the driver uses — the same stable pty name, the same TCP port — so the driver reconnects
        by itself at its next call. Returns the new simulator (its control endpoint is new)."""
        old = self.simulators[kind]
        endpoints = self.sim_endpoints.get(kind, {})
        if not (endpoints.get("pty") or endpoints.get("tcp")):
            raise ValueError(f"simulated {kind} cannot be replugged at the same address (no pty or tcp endpoint)")
        if old.proc.poll() is None:
            old.kill()
        config = self.configs.get(kind)
        sim_kind, args = simulator_for(kind, config.driver if config is not None else None)
        if endpoints.get("tcp"):
            args = tuple(endpoints["tcp"] if i > 0 and args[i - 1] == "--tcp" else a for i, a in enumerate(args))
        sim = SimulatorProcess(sim_kind, *args)
        self.simulators[kind] = sim
        if endpoints.get("pty"):
            stable = self._stable_endpoints(kind, sim.endpoints)
        else:
            stable = dict(sim.endpoints)
            if stable.get("tcp") != endpoints["tcp"]:
                sim.stop()
                raise RuntimeError(f"simulated {kind} came back on {stable.get('tcp')}, not {endpoints['tcp']}")
        self.sim_endpoints[kind] = stable
        log.info("simulated %s replugged (simulator pid %d)", kind, sim.pid)
        return sim

    def start(self) -> None:
        """Build and open every device. A device that cannot open is kept (its status says why) so the kiosk can
        run degraded and drivers can recover when the device comes back."""
        for kind, config in self.configs.items():
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
        for endpoints in self.sim_endpoints.values():
            if endpoints.get("pty"):
                Path(endpoints["pty"]).unlink(missing_ok=True)

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
        return {kind: self.status(kind) for kind in self.configs}

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
