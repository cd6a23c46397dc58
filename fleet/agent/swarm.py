"""A swarm of lightweight virtual kiosk agents for scale tests: thousands of kiosks in one process.

Each virtual kiosk has its own MQTT connection (username and client id = kiosk id, so the broker's ACL applies), a
Will carrying its bdSeq, a birth on connect, then data messages at the swarm's rate with correct ``seq``/``mid``, and it
answers signed ``rebirth`` commands (checked with :class:`fleet.signing.CommandVerifier`) with a new birth. It speaks
MQTT 3.1.1 directly over asyncio streams with pre-encoded payloads: a full :class:`fleet.agent.FleetAgent` per kiosk
(four threads each) would measure the load generator rather than the controller.

``python -m fleet.agent.swarm --broker mqtt://127.0.0.1:1883 --count 2000 --verify-key k.pub --rate 20000``
prints one JSON line ``{"pid": …, "control": "127.0.0.1:PORT", "kiosks": N}``; control commands (one JSON per
line): ``set_rate`` (rate = messages/s over the whole swarm), ``set_paper`` (kiosk, state → publishes the change and
alarm at once and answers with the send time), ``stats``, ``connected``, ``drop`` (kiosk, hold seconds: close its socket
without DISCONNECT, so the broker sends its Will, and stay away that long).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

from fleet import protocol as P
from fleet.mqtt import BrokerConfig
from fleet.signing import CommandRejected, CommandVerifier


def _varlen(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (128 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def connect_packet(client_id: str, username: str, will_topic: str, will_payload: bytes, keepalive: int = 60) -> bytes:
    flags = 0x80 | 0x08 | 0x04 | 0x02  # username, will QoS 1, will flag, clean session
    body = _str("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + _str(client_id) + _str(will_topic) + \
        _str(will_payload) + _str(username)
    return b"\x10" + _varlen(len(body)) + body


def publish_packet(topic: str | bytes, payload: bytes, qos: int, packet_id: int = 0) -> bytes:
    body = _str(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return bytes([0x30 | (qos << 1)]) + _varlen(len(body)) + body


def subscribe_packet(packet_id: int, topic: str, qos: int = 1) -> bytes:
    body = struct.pack("!H", packet_id) + _str(topic) + bytes([qos])
    return b"\x82" + _varlen(len(body)) + body


DEVICES_OK = {
    "idcard": {"state": "ok", "xfs": "online", "error_code": None, "error_text": "", "counters": {"cards_read": 0}},
    "receipt_printer": {"state": "ok", "xfs": "online", "supplies": {"paper": "ok"}, "error_code": None,
                        "error_text": "", "counters": {"pages": 0}},
}
HOST = {"uptime_s": 86400, "cpu_temp_c": 48.5, "disk_free_mb": 51200, "disk_free_pct": 62.0, "mem_used_pct": 41.0,
        "platform_latency_ms": 3.2}


class VirtualAgent:
    """One swarm kiosk: its connection and its counters."""

    def __init__(self, swarm: "Swarm", kiosk_id: str, index: int) -> None:
        self.swarm = swarm
        self.kiosk_id = kiosk_id
        self.index = index
        self.bd = random.randrange(256)
        self.seq = 0
        self.mid = P.now_ms() * 1000
        self.packet_id = 0
        self.sessions = 0
        self.paper = "ok"
        self.writer: asyncio.StreamWriter | None = None
        self.connected = False
        self.verifier = CommandVerifier(kiosk_id, swarm.keys) if swarm.keys else None
        self.seen: set[str] = set()
        self.hold_until = 0.0
        tid = kiosk_id
        self.t_data = f"fleet/v1/{tid}/data".encode()
        self.t_alarm = f"fleet/v1/{tid}/alarm".encode()
        self.t_birth = f"fleet/v1/{tid}/birth".encode()
        host = json.dumps(HOST, separators=(",", ":"))
        # heartbeat-sized data messages (~560 bytes), one template per paper level, formatted per message
        self.templates = {}
        for level, state in (("ok", "ok"), ("near-end", "degraded"), ("out", "fault")):
            devices = json.loads(json.dumps(DEVICES_OK))
            devices["receipt_printer"]["supplies"]["paper"] = level
            devices["receipt_printer"]["state"] = state
            self.templates[level] = (
                b'{"v":1,"kiosk_id":"' + tid.encode() + b'","ts":%d,"reason":"heartbeat","devices":' +
                json.dumps(devices, separators=(",", ":")).encode() + b',"host":' + host.encode() +
                b',"service":"in_service","counters":{"sessions":%d},"mid":%d,"seq":%d,"bdSeq":%d}')

    def _pid(self) -> int:
        self.packet_id = self.packet_id % 65535 + 1
        return self.packet_id

    def _next(self) -> tuple[int, int]:
        self.mid += 1
        self.seq = (self.seq + 1) % 256
        return self.mid, self.seq

    def birth(self) -> bytes:
        self.seq = 0
        self.mid += 1
        devices = json.loads(json.dumps(DEVICES_OK))
        devices["receipt_printer"]["supplies"]["paper"] = self.paper
        if self.paper != "ok":
            devices["receipt_printer"]["state"] = "fault" if self.paper == "out" else "degraded"
        payload = P.dumps({"v": 1, "kiosk_id": self.kiosk_id, "ts": P.now_ms(), "seq": 0, "bdSeq": self.bd,
                           "mid": self.mid, "identity": {"name": f"压测终端 {self.index:05d}",
                                                         "district": f"压测区{self.index % 8 + 1}",
                                                         "location": "bench", "app_version": "bench",
                                                         "profile_hash": "bench", "agent_version": "swarm"},
                           "heartbeat_s": 30, "commands": ["rebirth"], "devices": devices, "host": HOST,
                           "service": "in_service", "counters": {"sessions": self.sessions}})
        self.swarm.sent += 1
        return publish_packet(self.t_birth, payload, 1, self._pid())

    def data(self, now_ms: int) -> bytes:
        mid, seq = self._next()
        if mid % 10 == 0:
            self.sessions += 1  # a citizen served now and then
        payload = self.templates[self.paper] % (now_ms, self.sessions, mid, seq, self.bd)
        return publish_packet(self.t_data, payload, self.swarm.qos, self._pid() if self.swarm.qos else 0)

    def paper_change(self, state: str) -> bytes:
        """A change (data) and an alarm, as a real agent sends when the printer runs out."""
        old = self.paper
        self.paper = state
        model = {"state": {"ok": "ok", "near-end": "degraded", "out": "fault"}[state], "xfs": "online",
                 "supplies": {"paper": state}, "error_code": None if state == "ok" else f"paper_{state.replace('-', '_')}",
                 "error_text": "", "counters": {"pages": 0}}
        now = P.now_ms()
        mid, seq = self._next()
        data = P.dumps({"v": 1, "kiosk_id": self.kiosk_id, "ts": now, "reason": "change",
                        "devices": {"receipt_printer": model}, "mid": mid, "seq": seq, "bdSeq": self.bd})
        events = []
        for level, active in ((old, False), (state, True)):
            if level != "ok":
                events.append({"device": "receipt_printer", "code": f"paper_{level.replace('-', '_')}",
                               "severity": "critical" if level == "out" else "warning", "active": active})
        mid, seq = self._next()
        alarm = P.dumps({"v": 1, "kiosk_id": self.kiosk_id, "ts": now, "events": events,
                         "devices": {"receipt_printer": model}, "mid": mid, "seq": seq, "bdSeq": self.bd})
        self.swarm.sent += 2
        return publish_packet(self.t_data, data, 1, self._pid()) + publish_packet(self.t_alarm, alarm, 1, self._pid())

    async def run(self) -> None:
        backoff = 0.5
        while not self.swarm.stopping:
            try:
                await self._session()
                backoff = 0.5
            except (OSError, asyncio.IncompleteReadError, ConnectionError):
                pass
            self.connected = False
            if self.swarm.stopping:
                return
            await asyncio.sleep(max(backoff * random.uniform(0.5, 1.5), self.hold_until - time.monotonic()))
            backoff = min(10.0, backoff * 2)

    async def _session(self) -> None:
        b = self.swarm.broker
        reader, writer = await asyncio.open_connection(b.host, b.port)
        self.bd = (self.bd + 1) % 256
        will = P.dumps({"v": 1, "kiosk_id": self.kiosk_id, "ts": P.now_ms(), "bdSeq": self.bd, "reason": "will"})
        writer.write(connect_packet(self.kiosk_id, self.kiosk_id, f"fleet/v1/{self.kiosk_id}/death", will))
        head = await reader.readexactly(4)
        if head[0] != 0x20 or head[3] != 0:
            writer.close()
            raise ConnectionError(f"CONNACK refused: {head!r}")
        writer.write(subscribe_packet(self._pid(), f"fleet/v1/{self.kiosk_id}/cmd/+"))
        writer.write(self.birth())
        self.writer = writer
        self.connected = True
        try:
            await self._read(reader, writer)
        finally:
            self.connected = False
            self.writer = None
            writer.close()

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            first = (await reader.readexactly(1))[0]
            mult, length = 1, 0
            while True:
                byte = (await reader.readexactly(1))[0]
                length += (byte & 127) * mult
                mult *= 128
                if not byte & 128:
                    break
            body = await reader.readexactly(length) if length else b""
            kind = first >> 4
            if kind == 3:  # PUBLISH: a command
                qos = (first >> 1) & 3
                tlen = struct.unpack("!H", body[:2])[0]
                topic = body[2:2 + tlen].decode()
                pos = 2 + tlen
                if qos:
                    writer.write(b"\x40\x02" + body[pos:pos + 2])
                    pos += 2
                self._command(topic, body[pos:], writer)

    def _command(self, topic: str, payload: bytes, writer: asyncio.StreamWriter) -> None:
        command_id = topic.rsplit("/", 1)[-1]
        status, reason = "done", ""
        try:
            if self.verifier is None:
                raise CommandRejected("unknown_key", command_id)
            cmd = self.verifier.verify(payload, command_id, seen=self.seen)
            self.seen.add(cmd.id)
            if cmd.name != "rebirth":
                status, reason = "rejected", "unsupported"
        except CommandRejected as exc:
            status, reason = "rejected", exc.reason
            cmd = None
        out = b""
        if cmd is not None and status == "done":
            for st in ("accepted", "done"):
                mid, seq = self._next()
                out += publish_packet(f"fleet/v1/{self.kiosk_id}/cmd-result/{command_id}", P.dumps(
                    {"v": 1, "kiosk_id": self.kiosk_id, "ts": P.now_ms(), "command_id": command_id, "status": st,
                     "reason": "", "data": {}, "mid": mid, "seq": seq, "bdSeq": self.bd}), 1, self._pid())
            out += self.birth()
            self.swarm.rebirths += 1
            self.swarm.sent += 2
        else:
            mid, seq = self._next()
            out += publish_packet(f"fleet/v1/{self.kiosk_id}/cmd-result/{command_id}", P.dumps(
                {"v": 1, "kiosk_id": self.kiosk_id, "ts": P.now_ms(), "command_id": command_id, "status": status,
                 "reason": reason, "data": {}, "mid": mid, "seq": seq, "bdSeq": self.bd}), 1, self._pid())
            self.swarm.sent += 1
        writer.write(out)


class Swarm:
    def __init__(self, broker: str, kiosk_ids: list[str], keys: list[bytes], rate: float = 0.0, qos: int = 1,
                 first_index: int = 0) -> None:
        self.broker = BrokerConfig.from_url(broker)
        self.keys = keys
        self.qos = qos
        self.rate = rate
        self.stopping = False
        self.sent = 0
        self.rebirths = 0
        self.agents = [VirtualAgent(self, k, first_index + i) for i, k in enumerate(kiosk_ids)]
        self.by_id = {a.kiosk_id: a for a in self.agents}
        self.loop: asyncio.AbstractEventLoop | None = None

    async def main(self, ready: threading.Event) -> None:
        self.loop = asyncio.get_running_loop()
        tasks = []
        for i in range(0, len(self.agents), 200):  # connect in waves: a reconnect storm is not what is measured
            tasks += [asyncio.create_task(a.run()) for a in self.agents[i:i + 200]]
            await asyncio.sleep(0.05)
        ready.set()
        tick = 0.02
        carry = 0.0
        cursor = 0
        next_t = time.perf_counter()
        while not self.stopping:
            next_t += tick
            await asyncio.sleep(max(0.0, next_t - time.perf_counter()))
            if self.rate <= 0:
                next_t = time.perf_counter()
                continue
            carry += self.rate * tick
            n = int(carry)
            carry -= n
            now = P.now_ms()
            out: dict[VirtualAgent, list[bytes]] = {}
            agents = self.agents
            count = len(agents)
            for _ in range(n):
                a = agents[cursor]
                cursor = (cursor + 1) % count
                if a.writer is not None:
                    out.setdefault(a, []).append(a.data(now))
            for a, packets in out.items():
                if a.writer is not None:
                    a.writer.write(b"".join(packets))
                    self.sent += len(packets)
            if time.perf_counter() - next_t > 1.0:
                next_t = time.perf_counter()  # we fell behind: do not try to catch up in a burst
        for t in tasks:
            t.cancel()

    # control (called from the control server's thread) -------------------------------------------------------
    def call(self, fn: Any, *args: Any) -> Any:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(fn(*args), self.loop).result(10)

    async def _set_paper(self, kiosk: str, state: str) -> dict[str, Any]:
        a = self.by_id[kiosk]
        if a.writer is None:
            return {"sent": False}
        sent_at = P.now_ms()
        a.writer.write(a.paper_change(state))
        await a.writer.drain()
        return {"sent": True, "sent_at": sent_at}

    async def _drop(self, kiosk: str, hold: float = 0.0) -> dict[str, Any]:
        a = self.by_id[kiosk]
        a.hold_until = time.monotonic() + hold
        if a.writer is not None:
            a.writer.transport.abort()
        return {"dropped": True}


def main(argv: list[str] | None = None) -> int:
    from drivers.sim.control import ControlServer

    parser = argparse.ArgumentParser(prog="python -m fleet.agent.swarm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--prefix", default="SW-")
    parser.add_argument("--first", type=int, default=1)
    parser.add_argument("--verify-key", action="append", default=[])
    parser.add_argument("--rate", type=float, default=0.0, help="data messages per second over the whole swarm")
    parser.add_argument("--qos", type=int, default=1, choices=(0, 1))
    parser.add_argument("--control", default="127.0.0.1:0")
    args = parser.parse_args(argv)
    ids = [f"{args.prefix}{args.first + i:05d}" for i in range(args.count)]
    swarm = Swarm(args.broker, ids, [Path(p).read_bytes() for p in args.verify_key], args.rate, args.qos,
                  args.first)
    ready = threading.Event()

    def stats() -> dict[str, Any]:
        return {"sent": swarm.sent, "connected": sum(a.connected for a in swarm.agents), "rate": swarm.rate,
                "rebirths": swarm.rebirths}

    def set_rate(rate: float) -> dict[str, Any]:
        swarm.rate = float(rate)
        return stats()

    handlers = {"stats": stats, "set_rate": set_rate,
                "set_paper": lambda kiosk, state: swarm.call(swarm._set_paper, kiosk, state),
                "drop": lambda kiosk, hold=0.0: swarm.call(swarm._drop, kiosk, float(hold))}
    host, _, port = args.control.rpartition(":")
    control = ControlServer(handlers, host or "127.0.0.1", int(port)).start()

    def stop(*_: Any) -> None:
        swarm.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def announce() -> None:
        ready.wait()
        sys.stdout.write(json.dumps({"pid": os.getpid(), "control": control.address, "kiosks": len(ids)}) + "\n")
        sys.stdout.flush()

    threading.Thread(target=announce, daemon=True).start()
    asyncio.run(swarm.main(ready))
    control.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
