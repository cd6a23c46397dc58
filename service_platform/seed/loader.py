"""Load the demo data (``catalogue.yaml``, ``demo.yaml``) into an empty database.

Checks the data while loading (unknown references, application numbers vs. submission dates, ID check digits) so a
typo in the YAML fails loudly instead of producing an odd catalogue.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service_platform.auth import hash_key
from service_platform.db import CHINA_TZ, utcnow
from service_platform.identity import is_valid_id18
from service_platform.models import (
    Application, ApplicationEvent, Category, Kiosk, Place, Service, ServiceMaterial, ServicePlace)
from service_platform.search import build_keys

SEED_DIR = Path(__file__).resolve().parent
DEFAULT_DEMO_KIOSK_KEY = "demo-kiosk-key"  # development only; override with env PLATFORM_DEMO_KIOSK_KEY
STATUSES = ("received", "accepted", "in_review", "supplement_required", "decided", "rejected", "delivered")
_MATERIAL_DEFAULTS: dict[str, Any] = {"originals": 1, "copies": 0, "required": True, "e_cert_type": None,
                                      "note": None}


class SeedError(ValueError):
    pass


@dataclass
class SeedSummary:
    seeded: bool
    categories: int = 0
    services: int = 0
    places: int = 0
    kiosks: int = 0
    applications: int = 0


def load_yaml(name: str) -> dict[str, Any]:
    with open(SEED_DIR / name, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def is_seeded(db: Session) -> bool:
    return bool(db.scalar(select(func.count()).select_from(Category)))


def seed_if_empty(db: Session, *, demo_kiosk_key: str | None = None) -> SeedSummary:
    if is_seeded(db):
        return SeedSummary(seeded=False)
    return seed(db, demo_kiosk_key=demo_kiosk_key)


def _material(entry: dict[str, Any], library: dict[str, dict[str, Any]], where: str) -> dict[str, Any]:
    entry = dict(entry)
    base: dict[str, Any] = {}
    if "use" in entry:
        ref = entry.pop("use")
        if ref not in library:
            raise SeedError(f"{where}: unknown common material {ref!r}")
        base = library[ref]
    merged = {**_MATERIAL_DEFAULTS, **base, **entry}
    unknown = set(merged) - set(_MATERIAL_DEFAULTS) - {"name"}
    if unknown or not merged.get("name"):
        raise SeedError(f"{where}: bad material {entry!r}")
    return merged


def _seed_catalogue(db: Session, data: dict[str, Any]) -> dict[str, Service]:
    categories = {}
    for pos, c in enumerate(data["categories"]):
        categories[c["code"]] = Category(code=c["code"], name_zh=c["name_zh"], name_en=c["name_en"], position=pos)
    db.add_all(categories.values())
    places = {p["code"]: Place(**p) for p in data["places"]}
    db.add_all(places.values())
    library = data.get("common_materials", {})
    services: dict[str, Service] = {}
    for pos, s in enumerate(data["services"]):
        code = s["code"]
        if code in services:
            raise SeedError(f"duplicate service code {code!r}")
        cats = s["categories"]
        missing = [c for c in cats if c not in categories] + [p for p in s["places"] if p not in places]
        if missing:
            raise SeedError(f"service {code}: unknown category/place {missing}")
        if not 1 <= s["online_depth"] <= 4 or not s["materials"]:
            raise SeedError(f"service {code}: online_depth must be 1–4 and materials non-empty")
        initials, full = build_keys(s["name"], s.get("keywords", []))
        svc = Service(
            code=code, name=s["name"], name_en=s["name_en"], department=s["department"],
            primary_category=cats[0], online_depth=s["online_depth"], fee_fen=s["fee_fen"],
            fee_note=s.get("fee_note"), legal_days=s["legal_days"], promised_days=s["promised_days"],
            basis=s["basis"], conditions=list(s["conditions"]), faqs=[dict(f) for f in s.get("faqs", [])],
            keywords=list(s.get("keywords", [])), search_initials=initials, search_pinyin=full, position=pos,
            categories=[categories[c] for c in cats],
            materials=[ServiceMaterial(position=i, **_material(m, library, f"service {code}"))
                       for i, m in enumerate(s["materials"])],
            place_links=[ServicePlace(place_code=p, position=i) for i, p in enumerate(s["places"])],
        )
        services[code] = svc
    db.add_all(services.values())
    return services


def _at(seed_date: dt.date, day: int, time: str) -> dt.datetime:
    hh, mm = (int(x) for x in str(time).split(":"))
    local = dt.datetime.combine(seed_date + dt.timedelta(days=day), dt.time(hh, mm), tzinfo=CHINA_TZ)
    return local.astimezone(dt.timezone.utc)


def _seed_demo(db: Session, data: dict[str, Any], services: dict[str, Service], demo_kiosk_key: str) -> int:
    now = utcnow()
    for k in data["kiosks"]:
        db.add(Kiosk(id=k["id"], name=k["name"], location=k.get("location", ""), key_hash=hash_key(demo_kiosk_key),
                     active=True, created_at=now))
    seed_date = data["seed_date"]
    if isinstance(seed_date, str):
        seed_date = dt.date.fromisoformat(seed_date)
    numbers: set[str] = set()
    for a in data["applications"]:
        number, svc = a["number"], services.get(a["service"])
        if svc is None:
            raise SeedError(f"application {number}: unknown service {a['service']!r}")
        id_number = str(a["applicant"]["id_number"])
        if not is_valid_id18(id_number):
            raise SeedError(f"application {number}: invalid ID number")
        events = [ApplicationEvent(status=e["status"], at=_at(seed_date, e["day"], e["time"]),
                                   department=e.get("department", svc.department), note=e.get("note"))
                  for e in a["timeline"]]
        if any(e.status not in STATUSES for e in events) or events[-1].status != a["status"]:
            raise SeedError(f"application {number}: bad statuses (the last timeline entry must be the status)")
        submitted = events[0].at
        expected_prefix = "SP" + submitted.astimezone(CHINA_TZ).strftime("%Y%m%d")
        if number in numbers or not number.startswith(expected_prefix) or len(number) != 16 \
                or not number[2:].isdigit():
            raise SeedError(f"application {number}: number must be unique and {expected_prefix}+6 digits")
        numbers.add(number)
        db.add(Application(number=number, service_code=svc.code, applicant_id_number=id_number,
                           applicant_name=a["applicant"]["name"], status=a["status"], submitted_at=submitted,
                           department=svc.department, channel=a.get("channel", "window"), events=events))
    return len(numbers)


def seed(db: Session, *, demo_kiosk_key: str | None = None) -> SeedSummary:
    """Insert categories, places, services, the demo kiosk and demo applications, in one transaction."""
    catalogue = load_yaml("catalogue.yaml")
    demo = load_yaml("demo.yaml")
    services = _seed_catalogue(db, catalogue)
    db.flush()
    n_apps = _seed_demo(db, demo, services, demo_kiosk_key or DEFAULT_DEMO_KIOSK_KEY)
    db.commit()
    return SeedSummary(seeded=True, categories=len(catalogue["categories"]), services=len(services),
                       places=len(catalogue["places"]), kiosks=len(demo["kiosks"]), applications=n_apps)
