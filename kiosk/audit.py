"""Append-only audit journal: one JSON object per line, each carrying the SHA-256 of the line before it, flushed and
fsynced before the step it records is taken as done. No personal data in clear: values are checked and any
ID-number-like text is masked before it is written (the caller should pass masked values in the first place).
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from kiosk.privacy import scrub

GENESIS = "0" * 64


class AuditJournal:
    def __init__(self, path: str | os.PathLike[str], kiosk_id: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.kiosk_id = kiosk_id
        self._lock = threading.Lock()
        self._last_hash = self._tail_hash()

    def _tail_hash(self) -> str:
        last = GENESIS
        if self.path.exists():
            with self.path.open("rb") as fh:
                for line in fh:
                    if line.strip():
                        last = hashlib.sha256(line.rstrip(b"\n")).hexdigest()
        return last

    def record(self, event: str, session_id: str | None = None, **fields: Any) -> dict[str, Any]:
        """Append one entry; returns it. ``fields`` must be JSON-serialisable."""
        safe = json.loads(scrub(json.dumps(fields, ensure_ascii=False, default=str)))
        with self._lock:
            entry = {"ts": round(time.time(), 3), "kiosk": self.kiosk_id, "event": event,
                     "session": session_id, **safe, "prev": self._last_hash}
            line = json.dumps(entry, ensure_ascii=False, sort_keys=True).encode("utf-8")
            with self.path.open("ab") as fh:
                fh.write(line + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
            self._last_hash = hashlib.sha256(line).hexdigest()
        return entry

    def entries(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)

    def verify(self) -> bool:
        """True when every entry's ``prev`` is the hash of the line before it (nothing removed or edited)."""
        prev = GENESIS
        with self.path.open("rb") as fh:
            for line in fh:
                line = line.rstrip(b"\n")
                if not line:
                    continue
                if json.loads(line).get("prev") != prev:
                    return False
                prev = hashlib.sha256(line).hexdigest()
        return True
