"""The kiosk limits glibc's malloc arenas when it starts (kiosk/memory.py); the environment's own setting wins."""
from __future__ import annotations

import subprocess
import sys

CHECK = ("import sys; from kiosk.memory import limit_malloc_arenas; "
         "sys.exit(0 if limit_malloc_arenas() is (sys.argv[1] == 'yes') else 1)")


def run(expect: str, env: dict[str, str]) -> int:
    return subprocess.run([sys.executable, "-c", CHECK, expect], env=env, timeout=60).returncode


def test_arenas_are_limited_unless_the_environment_says_otherwise() -> None:
    import os

    base = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    assert run("yes", base) == 0, "glibc's mallopt accepted the limit"
    assert run("no", {**base, "MALLOC_ARENA_MAX": "4"}) == 0, "an operator's MALLOC_ARENA_MAX is left alone"
