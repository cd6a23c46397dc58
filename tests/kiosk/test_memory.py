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


def test_freed_heap_goes_back_after_a_session() -> None:
    """What a session freed (here 64 MiB in 4 KiB blocks, freed except the last: the top of the heap stays pinned, so
    only a trim returns the pages below it) is resident until ``release_free_memory`` gives it back."""
    code = """
import ctypes, ctypes.util
from kiosk.memory import release_free_memory
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
blocks = [libc.malloc(4096) for _ in range(16384)]
for b in blocks:
    ctypes.memset(b, 1, 4096)
for b in blocks[:-1]:
    libc.free(b)
before = rss()
assert release_free_memory() is True
print(before - rss())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) > 32, f"only {out.stdout.strip()} MiB given back"
