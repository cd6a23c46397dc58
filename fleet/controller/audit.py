"""Sequence audit: finds lost kiosk messages across every controller sharing the subscription.

A shared subscription on mosquitto hands each message to the next subscriber in turn, so no single controller sees a
kiosk's whole stream. Every controller therefore logs, per flush, the (kiosk, bdSeq, seq) of what it stored
(``seq_log``), and the controller holding the sweeper lease merges those logs here. Within a session (bdSeq) the seqs
must follow each other (mod 256, birth = 0).

When is a missing seq lost rather than late? Each controller receives its share of a kiosk's messages in the order
the kiosk sent them, however far behind that controller is. So seq *e* is lost once every live controller has logged
a later message of the same session (none of them can still be holding *e*), or — for a controller that has gone
quiet — after ``fallback_ms``. Data from a session whose birth nobody logged is judged the same way (the birth is
seq 0). A gap opens a ``seq_gap`` alert and asks the kiosk for a rebirth, which resets the sequence.

Entries are ``[kiosk, bdSeq, seq, kind, recv]`` or runs ``[kiosk, bdSeq, seq, kind, recv, count]``: ``count``
consecutive seqs from ``seq`` (kind and receive time of the first; only a run's first message can be a birth). A run
that continues where its session stands is taken in one step.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping


def _after(a: int, b: int) -> bool:
    """seq ``a`` comes after seq ``b`` (mod 256, within half the circle)."""
    return 0 < (a - b) % 256 < 128


@dataclass
class _Kiosk:
    bd: int
    expected: int
    pending: dict[tuple[int, int], int] = field(default_factory=dict)   # (bd, seq) → recv ms
    last: dict[str, tuple[int, int]] = field(default_factory=dict)     # controller → (bd, seq) it logged last


class SequenceAuditor:
    def __init__(self, fallback_ms: int = 10_000) -> None:
        self.fallback_ms = fallback_ms
        self.kiosks: dict[str, _Kiosk] = {}
        self._seen_rows: dict[int, int] = {}

    def reset(self) -> None:
        self.kiosks.clear()
        self._seen_rows.clear()

    def feed_rows(self, rows: Iterable[tuple[int, int, str, list[list[Any]]]], now: int
                  ) -> list[tuple[str, list[Any]]]:
        """seq_log rows (id, ingested_at, controller, entries), each taken once → [(controller, entry)]."""
        out: list[tuple[str, list[Any]]] = []
        for row_id, ingested_at, controller, entries in rows:
            if row_id in self._seen_rows:
                continue
            self._seen_rows[row_id] = ingested_at
            out.extend((controller, e) for e in entries)
        for row_id, at in list(self._seen_rows.items()):
            if at < now - 120_000:
                del self._seen_rows[row_id]
        return out

    def audit(self, entries: Iterable[tuple[str, list[Any]]], now: int, alive: set[str],
              lookup: Callable[[list[str]], Mapping[str, tuple[int, bool]]]) -> list[tuple[str, str]]:
        """Take ``(controller, entry)`` pairs (entries or runs, see the module doc; kind B = birth); return the gaps found as
        ``[(kiosk, detail)]``. ``alive``: controllers heartbeating now; ``lookup``: stored (bdSeq, online) for
        kiosks this auditor has no state for yet."""
        touched: dict[str, list[tuple[str, list[Any]]]] = {}
        drain = self._drain
        for controller, e in entries:
            touched.setdefault(e[0], []).append((controller, e))
        new = [k for k in touched if k not in self.kiosks]
        stored = lookup(new) if new else {}
        for kiosk in new:
            bd, online = stored.get(kiosk, (-1, False))
            births = [e for _c, e in touched[kiosk] if e[3] == "B"]
            if births:
                self.kiosks[kiosk] = _Kiosk(births[0][1], 0)
            elif online:
                # joined mid-stream (a restart, a new lease holder): start from the first seq now seen
                seqs = [e[2] for _c, e in touched[kiosk] if e[1] == bd]
                self.kiosks[kiosk] = _Kiosk(bd, min(seqs, key=lambda s: (s - seqs[0]) % 256) if seqs else 0)
            else:
                self.kiosks[kiosk] = _Kiosk(-1, 0)  # no session known: its birth is missing until proven otherwise
        gaps: list[tuple[str, str]] = []
        for kiosk, items in touched.items():
            st = self.kiosks[kiosk]
            for controller, e in items:
                bd, seq, kind, recv = e[1], e[2], e[3], e[4]
                count = e[5] if len(e) > 5 else 1
                if kind == "B":
                    if bd != st.bd or seq == 0:
                        st.bd, st.expected = bd, 0
                        st.pending = {key: r for key, r in st.pending.items() if key[0] == bd}
                if count > 1 and not st.pending and st.bd == bd and st.expected == seq:
                    st.expected = (seq + count) % 256  # the run follows on where the session stands
                else:
                    for i in range(count):
                        st.pending[(bd, (seq + i) % 256)] = recv
                        drain(st)
                st.last[controller] = (bd, (seq + count - 1) % 256)
        for kiosk, st in self.kiosks.items():
            while st.pending:
                gap = self._gap(st, now, alive)
                if gap is None:
                    break
                gaps.append((kiosk, gap))
        return gaps

    def _gap(self, st: _Kiosk, now: int, alive: set[str]) -> str | None:
        oldest_key = min(st.pending, key=st.pending.get)  # type: ignore[arg-type]
        bd = oldest_key[0] if st.bd < 0 or not any(k[0] == st.bd for k in st.pending) else st.bd
        session = sorted((k for k in st.pending if k[0] == bd), key=lambda k: (k[1] - st.expected) % 256)
        if not session:
            return None
        expected = st.expected if bd == st.bd else 0
        everyone = alive or set(st.last)
        passed = all(c in st.last and st.last[c][0] == bd and _after(st.last[c][1], expected) for c in everyone)
        overdue = min(st.pending[k] for k in session) < now - self.fallback_ms
        if not (passed or overdue):
            return None
        first = session[0][1]
        if bd != st.bd:
            detail = f"data from session bdSeq {bd} without its birth"
        else:
            detail = f"bdSeq {bd}: expected seq {expected}, got {first}"
        st.bd, st.expected = bd, first
        st.pending = {k: r for k, r in st.pending.items() if k[0] == bd}
        self._drain(st)
        return detail

    @staticmethod
    def _drain(st: _Kiosk) -> None:
        while True:
            key = (st.bd, st.expected)
            if key in st.pending:
                del st.pending[key]
                st.expected = (st.expected + 1) % 256
                continue
            # late duplicates (a QoS 1 redelivery, an outbox replay) of what was already counted
            for k in [k for k in st.pending if k[0] == st.bd and _after(st.expected, k[1])]:
                del st.pending[k]
            return
