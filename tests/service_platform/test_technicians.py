"""Technicians per kiosk (service_platform/technicians.py) through the real server: listed with the CLI by card hash +
PIN, looked up only by the kiosk they are listed for (signed requests), yes/no answers only, wrong PINs lock the
technician in the database, unknown cards throttle the asking kiosk."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from service_platform.technicians import card_hash

ROOT = Path(__file__).resolve().parents[2]
KIOSK_ID = "KSK-340302-0001"
OTHER_KIOSK_ID = "KSK-340302-0031"
TECH_NUMBER = "230202197511053015"      # 王建国 (synthetic): the technician's own ID card
CITIZEN_NUMBER = "340302195803172018"   # 张明华 (synthetic): a citizen, not a technician
LOOKUP, VERIFY = "/api/v1/kiosk/technicians/lookup", "/api/v1/kiosk/technicians/verify"


def technician_cli(platform: Any, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    db = platform.db_url or f"sqlite:///{platform.db_path}"
    where = [] if args[0] == "card-hash" else ["--db", db]
    return subprocess.run([sys.executable, "-m", "service_platform.cli", "technician", *args, *where],
                          capture_output=True, text=True, input=stdin, cwd=ROOT, timeout=60)


@pytest.fixture
def other_kiosk(platform: Any, new_kiosk_key_pair: Callable[[str], Any]) -> Iterator[httpx.Client]:
    keys = new_kiosk_key_pair(OTHER_KIOSK_ID)
    if not platform.query("SELECT id FROM kiosks WHERE id = :i", i=OTHER_KIOSK_ID):
        platform.execute("INSERT INTO kiosks (id, name, location, key_hash, active, created_at) "
                         "VALUES (:i, '31号机', '', '', :a, :c)", i=OTHER_KIOSK_ID, a=True, c=dt.datetime(2026, 11, 1))
    platform.execute("INSERT INTO kiosk_keys (kiosk_id, key_id, public_key, created_at) VALUES (:i, :k, :p, :c)",
                     i=OTHER_KIOSK_ID, k=keys.key_id, p=keys.public_key_b64, c=dt.datetime(2026, 11, 1))
    with httpx.Client(base_url=platform.url, timeout=10, auth=keys.signer()) as client:
        yield client


def test_technician_lookup_is_per_kiosk_yes_no_and_throttled(platform: Any, kiosk: httpx.Client,
                                                             public: httpx.Client, other_kiosk: httpx.Client) -> None:
    hashed = card_hash(TECH_NUMBER)
    assert technician_cli(platform, "card-hash", stdin=TECH_NUMBER + "\n").stdout.strip() == hashed
    added = technician_cli(platform, "add", "--kiosk", KIOSK_ID, "--card-hash", hashed, "--label", "王工",
                           stdin="135790\n")
    assert added.returncode == 0, added.stderr
    assert TECH_NUMBER not in added.stdout and "135790" not in added.stdout
    stored = platform.query("SELECT card_hash, pin_hash FROM kiosk_technicians WHERE kiosk_id = :k", k=KIOSK_ID)
    assert stored and stored[0][0] == hashed and "135790" not in stored[0][1] and \
        stored[0][1].startswith("pbkdf2_sha256$")

    # the kiosk it is listed for: yes; a citizen's card: no; answers carry nothing but yes/no
    r = kiosk.post(LOOKUP, json={"card_hash": hashed})
    assert r.status_code == 200 and r.json() == {"technician": True}
    assert kiosk.post(LOOKUP, json={"card_hash": card_hash(CITIZEN_NUMBER)}).json() == {"technician": False}
    assert kiosk.post(VERIFY, json={"card_hash": hashed, "pin": "135790"}).json() == {"technician": True}
    assert kiosk.post(VERIFY, json={"card_hash": card_hash(CITIZEN_NUMBER), "pin": "135790"}).json() == \
        {"technician": False}

    # who may call: unsigned → 401; another kiosk never sees this kiosk's technicians
    assert public.post(LOOKUP, json={"card_hash": hashed}).status_code == 401
    assert public.post(VERIFY, json={"card_hash": hashed, "pin": "135790"}).status_code == 401
    assert other_kiosk.post(LOOKUP, json={"card_hash": hashed}).json() == {"technician": False}
    assert other_kiosk.post(VERIFY, json={"card_hash": hashed, "pin": "135790"}).json() == {"technician": False}
    # malformed: a clear number instead of a hash is refused before anything is looked up
    assert kiosk.post(LOOKUP, json={"card_hash": TECH_NUMBER}).status_code == 422

    # five wrong PINs lock the technician (in the database): the right PIN is refused too, with Retry-After
    for _ in range(5):
        assert kiosk.post(VERIFY, json={"card_hash": hashed, "pin": "000000"}).json() == {"technician": False}
    locked = kiosk.post(VERIFY, json={"card_hash": hashed, "pin": "135790"})
    assert locked.status_code == 429 and locked.json()["error"]["code"] == "too_many_attempts", locked.text
    assert int(locked.headers["Retry-After"]) > 60
    assert platform.query("SELECT locked_until IS NOT NULL FROM kiosk_technicians WHERE card_hash = :h",
                          h=hashed) == [(True,)]
    # removing takes them off the list
    assert technician_cli(platform, "remove", "--kiosk", KIOSK_ID, "--card-hash", hashed).returncode == 0
    assert kiosk.post(LOOKUP, json={"card_hash": hashed}).json() == {"technician": False}

    # guessing card hashes from one kiosk: throttled after 20 unknown cards (the other kiosk tried 2 above)
    codes = [other_kiosk.post(LOOKUP, json={"card_hash": card_hash(f"9{i:017d}")}).status_code for i in range(20)]
    assert codes[:18] == [200] * 18 and codes[18:] == [429, 429]
