"""What answers at HOST:PORT: an ESC/POS printer (raw TCP, as port 9100), a GA 467 reader behind a serial-to-TCP
server, a nexo payment terminal (HTTP ``POST /nexo``) or an MJPEG camera (HTTP ``multipart/x-mixed-replace``).

As on serial lines, the printer question (DLE EOT 1) comes first, on its own connection; port 9100 gets nothing
else (anything sent to a raw printer port is printed). HTTP questions go last, each on a new connection.
:func:`scan_subnet_9100` finds raw printer ports on a subnet — only when the technician asks for it.
"""
from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from drivers.discovery.model import Confidence, Finding
from drivers.discovery.serial_probe import (DLE_EOT_PAPER, DLE_EOT_PRINTER, PROBE_SALE_ID, escpos_status_byte,
                                            first_ga467_frame)
from drivers.discovery.system_probe import frame_size
from drivers.idcard import protocol as ga467
from drivers.payment import nexo

RAW_PRINTER_PORT = 9100
#: where MJPEG cameras commonly serve their stream (ours first)
CAMERA_PATHS = ("/stream.mjpg", "/video.mjpg", "/mjpg/video.mjpg", "/axis-cgi/mjpg/video.cgi", "/video", "/")


def _ask_tcp(host: str, port: int, data: bytes, done: Callable[[bytes], bool], timeout: float) -> bytes | None:
    """Write ``data`` on a new connection and collect the answer; None when nothing listens."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return None
    got = b""
    try:
        sock.settimeout(0.05)
        sock.sendall(data)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not done(got):
            try:
                chunk = sock.recv(4096)
            except socket.timeout:
                continue
            if not chunk:
                break
            got += chunk
    except OSError:
        pass
    finally:
        sock.close()
    return got


def _escpos(host: str, port: int, timeout: float) -> Finding | None | bool:
    reply = _ask_tcp(host, port, DLE_EOT_PRINTER, lambda b: len(b) >= 1, timeout)
    if reply is None:
        return False   # nothing listens
    if len(reply) == 1 and escpos_status_byte(reply[0]):
        paper = _ask_tcp(host, port, DLE_EOT_PAPER, lambda b: len(b) >= 1, timeout) or b""
        note = f", paper status 0x{paper[0]:02X}" if paper and escpos_status_byte(paper[0]) else ""
        return Finding("receipt_printer", "escpos", f"{host}:{port}",
                       {"connection": "network", "host": host, "port": port}, Confidence.HIGH,
                       f"ESC/POS status (DLE EOT 1) answered 0x{reply[0]:02X}{note}")
    return None


def _ga467(host: str, port: int, timeout: float) -> Finding | None:
    reply = _ask_tcp(host, port, ga467.build_request(ga467.SAM_ID), lambda b: first_ga467_frame(b) is not None,
                     timeout) or b""
    frame = first_ga467_frame(reply)
    if frame is None:
        return None
    try:
        response = frame.response()
    except ga467.FrameError:
        return None
    url = f"socket://{host}:{port}"
    if response.sw3 == ga467.Sw3.OK and len(response.data) >= ga467.SAM_ID_LEN:
        sam = ga467.format_sam_id(response.data)
        return Finding("idcard", "ga467_serial", f"{host}:{port}", {"port": url}, Confidence.HIGH,
                       f"GA 467 SAM id {sam} over TCP", {"sam_id": sam})
    return Finding("idcard", "ga467_serial", f"{host}:{port}", {"port": url}, Confidence.MEDIUM,
                   f"GA 467 frame with status {ga467.describe_sw3(response.sw3)} over TCP")


def _nexo(host: str, port: int, timeout: float) -> Finding | None:
    body = nexo.encode(nexo.diagnosis_request(PROBE_SALE_ID, ""))
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", "/nexo", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read(65536)
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    if resp.status != 200:
        return None
    try:
        head = json.loads(data)["SaleToPOIResponse"]["MessageHeader"]
    except (ValueError, KeyError, TypeError):
        return None
    poi = str(head.get("POIID") or "")
    return Finding("payment_pad", "nexo_tcp", f"{host}:{port}",
                   {"url": f"http://{host}:{port}/nexo", "poi_id": poi or "SET-POIID-FROM-LABEL"}, Confidence.HIGH,
                   f"nexo Diagnosis answered over HTTP{' by POI ' + poi if poi else ''}")


def _camera(host: str, port: int, timeout: float) -> Finding | None:
    for path in CAMERA_PATHS:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            ctype = resp.getheader("Content-Type") or ""
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()
        if resp.status == 200 and ctype.startswith("multipart/x-mixed-replace"):
            url = f"http://{host}:{port}{path}"
            # the frame size tells a document camera (高拍仪, megapixels) from the face camera (scan.propose_devices)
            size = frame_size(url)
            return Finding("camera", "opencv", f"{host}:{port}", {"source": url}, Confidence.HIGH,
                           f"MJPEG stream ({ctype.split(';')[0]}) at {path}"
                           + (f" gives {size[0]}x{size[1]} frames" if size else ""),
                           {"size": list(size)} if size else {})
    return None


def probe_host(host: str, port: int, timeout: float = 0.4, raw_printer: bool | None = None) -> Finding:
    """Ask HOST:PORT what it is; always a finding (``kind="unknown"`` with the reason when nothing fits). A raw
    printer port (``raw_printer``; default: port 9100) is asked DLE EOT only."""
    where = f"{host}:{port}"
    printer = _escpos(host, port, timeout)
    if printer is False:
        return Finding("unknown", "", where, {}, Confidence.LOW, "nothing listens (connection refused or timed out)")
    if isinstance(printer, Finding):
        return printer
    if raw_printer or (raw_printer is None and port == RAW_PRINTER_PORT):
        return Finding("receipt_printer", "escpos", where, {"connection": "network", "host": host, "port": port},
                       Confidence.LOW, f"port {port} open but DLE EOT unanswered (a printer without real-time status?)")
    for probe in (_ga467, _nexo, _camera):
        found = probe(host, port, timeout)
        if found is not None:
            return found
    return Finding("unknown", "", where, {}, Confidence.LOW, "open, but answered none of the questions")


def scan_subnet_9100(cidr: str, timeout: float = 0.3, workers: int = 32,
                     port: int = RAW_PRINTER_PORT) -> list[Finding]:
    """Raw printer ports (``port``, 9100) on a subnet (at most a /22), each open one then asked DLE EOT (and
    nothing else); addresses where nothing listens give no finding."""
    net = ipaddress.ip_network(cidr, strict=False)
    if net.num_addresses > 1024:
        raise ValueError(f"{cidr}: at most 1024 addresses (a /22) are scanned")

    def one(ip: str) -> Finding | None:
        try:
            socket.create_connection((ip, port), timeout=timeout).close()
        except OSError:
            return None
        return probe_host(ip, port, timeout, raw_printer=True)

    with ThreadPoolExecutor(workers) as pool:
        hosts = [str(h) for h in (net.hosts() if net.num_addresses > 2 else net)]
        return [f for f in pool.map(one, hosts) if f is not None]
