"""Host health for the heartbeat: uptime, CPU temperature where the kernel exposes one, disk free on the kiosk's
data disk, memory, load, and the network latency to the service platform (time to open a TCP connection to it —
no request is made, so nothing is logged there). Linux /proc and /sys only; every reading may be missing (None)."""
from __future__ import annotations

import glob
import os
import shutil
import socket
import time
from typing import Any
from urllib.parse import urlsplit

_PROCESS_START = time.monotonic()


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def cpu_temperature_c() -> float | None:
    """The hottest readable thermal zone (x86_pkg_temp, cpu-thermal, acpitz…), in °C; None in VMs without one."""
    best = None
    for zone in glob.glob("/sys/class/thermal/thermal_zone*/temp"):
        raw = _read(zone)
        try:
            value = int(raw.strip()) / 1000.0 if raw else None
        except ValueError:
            value = None
        if value is not None and 0 < value < 150 and (best is None or value > best):
            best = value
    return round(best, 1) if best is not None else None


def memory() -> dict[str, Any]:
    info: dict[str, int] = {}
    for line in (_read("/proc/meminfo") or "").splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            info[name] = int(parts[0])  # kB
    total, avail = info.get("MemTotal"), info.get("MemAvailable")
    rss = None
    for line in (_read("/proc/self/status") or "").splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) // 1024
    out: dict[str, Any] = {"mem_available_mb": avail // 1024 if avail else None, "rss_mb": rss}
    out["mem_used_pct"] = round(100.0 * (1 - avail / total), 1) if total and avail is not None else None
    return out


def tcp_latency_ms(url: str, timeout: float = 1.0) -> float | None:
    parts = urlsplit(url if "://" in url else "http://" + url)
    host = parts.hostname
    if not host:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    start = time.perf_counter()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return round((time.perf_counter() - start) * 1000.0, 2)
    except OSError:
        return None


class HostProbe:
    """Collects host health. ``disk_path``: the kiosk's data folder; ``platform_url``: the service platform."""

    def __init__(self, disk_path: str | os.PathLike[str] = ".", platform_url: str | None = None,
                 latency_timeout: float = 1.0) -> None:
        self.disk_path = str(disk_path)
        self.platform_url = platform_url
        self.latency_timeout = latency_timeout

    def collect(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        uptime = _read("/proc/uptime")
        out["uptime_s"] = int(float(uptime.split()[0])) if uptime else None
        out["app_uptime_s"] = int(time.monotonic() - _PROCESS_START)
        out["cpu_temp_c"] = cpu_temperature_c()
        try:
            usage = shutil.disk_usage(self.disk_path if os.path.exists(self.disk_path) else "/")
            out["disk_free_mb"] = usage.free // (1024 * 1024)
            out["disk_free_pct"] = round(100.0 * usage.free / usage.total, 1) if usage.total else None
        except OSError:
            out["disk_free_mb"] = out["disk_free_pct"] = None
        out.update(memory())
        try:
            out["load1"] = round(os.getloadavg()[0], 2)
        except OSError:
            out["load1"] = None
        if self.platform_url:
            latency = tcp_latency_ms(self.platform_url, self.latency_timeout)
            out["platform_latency_ms"] = latency
            out["platform_reachable"] = latency is not None
        return out

    __call__ = collect
