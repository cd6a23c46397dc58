"""The controller's MQTT receive path: whole buffers of PUBLISH packets parsed in one pass.

:class:`fleet.mqtt.IngestClient` already reads the socket in large chunks and skips paho's ``MQTTMessage``; paho
still walks every packet byte by byte through ``_packet_read`` (≥ 3 calls per packet) and calls back once per message.
:class:`BulkIngestClient` parses every *complete* QoS 0/1 PUBLISH sitting in the receive buffer in one loop and hands
them over as one list (``on_publish_batch(items)``, items ``(topic: bytes, payload: bytes, mid: int, qos: int)``, in
arrival order). Anything else — CONNACK, SUBACK, PINGRESP, the PUBACK of our own publishes, QoS 2, a packet cut by the
end of the buffer — goes through paho's own reader, one packet, after which the fast loop continues. So connection
handling, keepalive, TLS and reconnects stay paho's, and arrival order is kept.

Back-pressure: ``read_gate()`` (when set) is asked before each socket read; while it says the consumer is full the
client does not read (it sleeps 10 ms and lets paho's loop send acknowledgements and pings), so TCP flow control
keeps the messages at the broker. Once per half keepalive it reads anyway, so the broker's PINGRESP gets through and
the connection stays up during a long stall (each such read adds at most one receive buffer, 256 kB, to the inbox).
"""
from __future__ import annotations

import time
from typing import Any, Callable

import paho.mqtt.client as mqtt

from fleet.mqtt import BrokerConfig, IngestClient, make_client

PublishItem = tuple[bytes, bytes, int, int]
_SUCCESS = mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
_AGAIN = mqtt.MQTTErrorCode.MQTT_ERR_AGAIN
_time_func = mqtt.time_func  # the clock paho's keepalive compares with


def parse_publishes(buf: bytes, pos: int, out: list[PublishItem]) -> int:
    """Parse complete QoS 0/1 PUBLISH packets from ``buf[pos:]`` into ``out``; stop at the first packet of another
    kind, a QoS 2 one, or one not wholly in ``buf``. Returns the position after the last packet taken."""
    end = len(buf)
    append = out.append
    while pos < end:
        first = buf[pos]
        if first & 0xF0 != 0x30 or first & 0x04:  # not a PUBLISH, or QoS 2 (or the invalid 3)
            return pos
        # remaining length: 1–4 bytes
        i = pos + 1
        length = mult = 0
        while True:
            if i >= end:
                return pos
            byte = buf[i]
            length += (byte & 127) << mult
            i += 1
            if not byte & 128:
                break
            mult += 7
            if mult > 21:
                return pos  # malformed: let paho report it
        stop = i + length
        if stop > end or length < 2:
            return pos
        tlen = (buf[i] << 8) | buf[i + 1]
        t0 = i + 2
        body = t0 + tlen
        qos = (first >> 1) & 3
        if qos:
            if body + 2 > stop:
                return pos
            append((buf[t0:body], buf[body + 2:stop], (buf[body] << 8) | buf[body + 1], qos))
        else:
            if body > stop:
                return pos
            append((buf[t0:body], buf[body:stop], 0, 0))
        pos = stop
    return pos


class BulkIngestClient(IngestClient):
    """:class:`IngestClient` with batch delivery of PUBLISH packets (MQTT 3.1.1; see the module doc)."""

    on_publish_batch: Callable[[list[PublishItem]], None] | None = None
    read_gate: Callable[[], bool] | None = None
    _gate_read_at = 0.0

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        gate = self.read_gate
        if gate is not None and gate():
            now = _time_func()
            if now - self._gate_read_at < max(1.0, self._keepalive / 2):
                time.sleep(0.01)  # back-pressure: leave the data in the socket
                return _SUCCESS
            self._gate_read_at = now  # one read now and then: keepalive answers must get through
        sink = self.on_publish_batch
        if sink is None or self._protocol == mqtt.MQTTv5:
            return super().loop_read(max_packets)
        for _ in range(10000):
            sock = self._sock
            if sock is None:
                return mqtt.MQTTErrorCode.MQTT_ERR_NO_CONN
            buf = getattr(sock, "_buf", None)
            if buf is not None and self._in_packet["command"] == 0 and sock._pos < len(buf):
                items: list[PublishItem] = []
                pos = parse_publishes(buf, sock._pos, items)
                if items:
                    sock._pos = pos
                    with self._msgtime_mutex:
                        self._last_bytes_received = _time_func()
                    sink(items)
                    if gate is not None and gate():
                        return _SUCCESS
                    if pos >= len(buf):
                        continue  # the buffer is used up: read the socket again (paho's path, one packet)
            # one packet through paho: a non-PUBLISH, one cut by the buffer's end, or the read that refills it
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == _AGAIN or self._sock is None:
                return _SUCCESS
            pending = getattr(self._sock, "pending", None)
            if pending is None or pending() == 0:
                return _SUCCESS
        return _SUCCESS


def make_ingest_client(broker: BrokerConfig, client_id: str, *, manual_ack: bool = True) -> BulkIngestClient:
    """The controller's client: :func:`fleet.mqtt.make_client` (TLS, credentials, MQTT 3.1.1, clean session) built as
    a :class:`BulkIngestClient`."""
    client: Any = make_client(broker, client_id, protocol=mqtt.MQTTv311, clean=True, manual_ack=manual_ack,
                              cls=BulkIngestClient)
    return client
