"""Failed-attempt throttling for lookups that a guesser could repeat (application progress by number + the last 4
characters of the applicant's ID number): at most ``limit`` failures per client address within ``window``; while
over the limit every attempt from that address is refused (429 ``too_many_attempts`` with ``Retry-After``), right
answers included, so the limit cannot be probed. In memory, per platform process (a restart forgets it; several
processes behind a balancer each count their own)."""
from __future__ import annotations

import datetime as dt
import math
import threading
from collections import deque


class FailureThrottle:
    def __init__(self, limit: int = 10, window: dt.timedelta = dt.timedelta(minutes=10),
                 max_clients: int = 100_000) -> None:
        self.limit, self.window, self.max_clients = limit, window, max_clients
        self._failures: dict[str, deque[dt.datetime]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: dt.datetime) -> deque[dt.datetime]:
        times = self._failures.get(client, deque())
        while times and now - times[0] >= self.window:
            times.popleft()
        return times

    def retry_after(self, client: str, now: dt.datetime) -> int | None:
        """Seconds until ``client`` may try again, or None when it may try now."""
        with self._lock:
            times = self._recent(client, now)
            if not times:
                self._failures.pop(client, None)
            if len(times) < self.limit:
                return None
            return max(1, math.ceil((times[len(times) - self.limit] + self.window - now).total_seconds()))

    def failed(self, client: str, now: dt.datetime) -> None:
        with self._lock:
            if client not in self._failures and len(self._failures) >= self.max_clients:
                for old in [c for c, t in self._failures.items() if not t or now - t[-1] >= self.window]:
                    del self._failures[old]
            times = self._recent(client, now)
            times.append(now)
            self._failures[client] = times
