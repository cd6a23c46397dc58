"""The device manager: the profile's devices as a :class:`drivers.device_set.DeviceSet` (built through the driver
registry, simulators started where the profile says ``simulate: true``, statuses, unplug/replug of simulated
devices). It is the one place the rest of the kiosk (use-cases, the fleet agent) gets devices from.
"""
from __future__ import annotations

from device_profiles.loader import Profile
from drivers.device_set import DeviceSet


class DeviceManager(DeviceSet):
    """The devices named in the kiosk's profile (``profile.devices``; simulated serial devices get their stable
    names under ``<data_dir>/sim-dev``)."""

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile.devices, profile.kiosk.data_dir)
        self.profile = profile
