"""Load the demo data (``catalogue.yaml``, ``demo.yaml``) into an empty database.

Checks the data while loading (unknown references, application numbers vs. submission dates, ID check digits, form
schemas, e-certificate types and fields) so a typo in the YAML fails loudly instead of producing an odd catalogue.

The data is loaded in parts, each only when its table is still empty, so a database created by an older version of
the platform gets the newer parts (filing rules, halls, e-certificates, …) on the next start.
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
from service_platform.forms import check_schema
from service_platform.identity import is_valid_id18
from service_platform.models import (
    Application, ApplicationEvent, ApplicationMaterial, Category, Delivery, ECertificate, ECertificateType, Hall,
    HallQueue, Kiosk, Place, RegisteredCitizen, Service, ServiceFilingRule, ServiceMaterial, ServicePlace)
from service_platform.numbering import opaque_id
from service_platform.search import build_keys

SEED_DIR = Path(__file__).resolve().parent
DEFAULT_DEMO_KIOSK_KEY = "demo-kiosk-key"  # development only; override with env PLATFORM_DEMO_KIOSK_KEY
STATUSES = ("received", "accepted", "in_review", "supplement_required", "decided", "rejected", "delivered")
_MATERIAL_DEFAULTS: dict[str, Any] = {"originals": 1, "copies": 0, "required": True, "e_cert_type": None,
                                      "note": None}
_MATERIAL_FLAGS = ("online_form", "deferrable")
IDENTITY_CERT_NAME = "居民身份证"
DAY_RANGES = {"mon-fri": range(0, 5), "mon-sat": range(0, 6), "mon-sun": range(0, 7), "sat": range(5, 6),
              "sun": range(6, 7)}


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
    filing_rules: int = 0
    e_certificate_types: int = 0
    halls: int = 0
    citizens: int = 0
    e_certificates: int = 0
    deliveries: int = 0


def load_yaml(name: str) -> dict[str, Any]:
    with open(SEED_DIR / name, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def is_seeded(db: Session) -> bool:
    return bool(db.scalar(select(func.count()).select_from(Category)))


def _empty(db: Session, model: type) -> bool:
    return not db.scalar(select(func.count()).select_from(model))


def seed_if_empty(db: Session, *, demo_kiosk_key: str | None = None) -> SeedSummary:
    """Seed everything into an empty database; into a seeded one only the parts whose tables are still empty."""
    if not is_seeded(db):
        return seed(db, demo_kiosk_key=demo_kiosk_key)
    summary = SeedSummary(seeded=False)
    catalogue = load_yaml("catalogue.yaml")
    demo = load_yaml("demo.yaml")
    services = {s.code: s for s in db.scalars(select(Service)).all()}
    _seed_extras(db, catalogue, demo, services, summary)
    if summary != SeedSummary(seeded=False):
        summary.seeded = True
        db.commit()
    return summary


def _seed_extras(db: Session, catalogue: dict[str, Any], demo: dict[str, Any], services: dict[str, Service],
                 summary: SeedSummary) -> None:
    """The parts added after the first release, each when its table is empty."""
    if _empty(db, ECertificateType):
        summary.e_certificate_types = _seed_cert_types(db, catalogue)
        db.flush()
    cert_types = {t.code: t for t in db.scalars(select(ECertificateType)).all()}
    if _empty(db, ServiceFilingRule):
        summary.filing_rules = _seed_filing_rules(db, catalogue, services, cert_types)
    if _empty(db, Hall):
        summary.halls = _seed_halls(db, catalogue)
    db.flush()
    if _empty(db, RegisteredCitizen):
        summary.citizens, summary.e_certificates = _seed_citizens(db, demo, cert_types)
        _seed_outstanding(db, demo, services)
    if _empty(db, Delivery):
        summary.deliveries = _seed_deliveries(db, demo)


def _material(entry: dict[str, Any], library: dict[str, dict[str, Any]], where: str) -> dict[str, Any]:
    entry = {k: v for k, v in entry.items() if k not in _MATERIAL_FLAGS}
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


def _seed_cert_types(db: Session, data: dict[str, Any]) -> int:
    names: set[str] = set()
    for pos, t in enumerate(data["e_certificate_types"]):
        keys = [f["key"] for f in t["fields"]]
        if t["name"] in names or len(set(keys)) != len(keys):
            raise SeedError(f"e-certificate type {t['code']}: duplicate name or field keys")
        names.add(t["name"])
        db.add(ECertificateType(code=t["code"], name=t["name"], name_en=t["name_en"], issuer=t["issuer"],
                                fields=[dict(f) for f in t["fields"]], position=pos))
    used = {m.get("e_cert_type") for s in data["services"] for m in s["materials"]} | {
        m.get("e_cert_type") for m in data.get("common_materials", {}).values()}
    unknown = sorted(n for n in used - names if n)
    if unknown:
        raise SeedError(f"materials name unknown e-certificate types: {unknown}")
    return len(names)


def _seed_filing_rules(db: Session, data: dict[str, Any], services: dict[str, Service],
                       cert_types: dict[str, ECertificateType]) -> int:
    fields = {code: {f["key"] for f in t.fields} for code, t in cert_types.items()}
    count = 0
    for s in data["services"]:
        flags = {flag: [i for i, m in enumerate(s["materials"]) if m.get(flag)] for flag in _MATERIAL_FLAGS}
        filing = s.get("filing")
        if filing is None:
            if any(flags.values()):
                raise SeedError(f"service {s['code']}: material flags without a filing block")
            continue
        try:
            check_schema(filing["form_schema"], cert_fields=fields)
        except ValueError as exc:
            raise SeedError(f"service {s['code']}: {exc}") from exc
        if s["fee_fen"] and not filing.get("fee_purpose"):
            raise SeedError(f"service {s['code']}: a fee needs filing.fee_purpose")
        db.add(ServiceFilingRule(service_id=services[s["code"]].id, form_schema=filing["form_schema"],
                                 form_materials=flags["online_form"], deferrable_materials=flags["deferrable"],
                                 supplement_days=int(filing.get("supplement_days", 5)),
                                 fee_purpose=filing.get("fee_purpose")))
        count += 1
    return count


def _hhmm(text: str) -> str:
    hh, mm = (int(x) for x in str(text).split(":"))
    return f"{hh:02d}:{mm:02d}"


def _seed_halls(db: Session, data: dict[str, Any]) -> int:
    places = {p["code"] for p in data["places"]}
    for pos, h in enumerate(data["halls"]):
        if h["place"] not in places:
            raise SeedError(f"hall {h['place']}: unknown place")
        schedule: dict[str, list[list[str]]] = {}
        for days, sessions in h["schedule"].items():
            ranges = [[_hhmm(a) for a in str(r).split("-")] for r in sessions]
            if any(len(r) != 2 or r[0] >= r[1] for r in ranges):
                raise SeedError(f"hall {h['place']}: bad opening sessions {sessions}")
            for day in DAY_RANGES[days]:
                schedule[str(day)] = ranges
        queues = [HallQueue(prefix=q["prefix"], name=q["name"], windows=list(q["windows"]),
                            departments=list(q.get("departments", [])), position=i)
                  for i, q in enumerate(h["queues"])]
        if sum(1 for q in queues if not q.departments) > 1 or len({q.prefix for q in queues}) != len(queues):
            raise SeedError(f"hall {h['place']}: queue prefixes must be unique, at most one general queue")
        db.add(Hall(place_code=h["place"], schedule=schedule, slot_minutes=int(h["slot_minutes"]),
                    slot_capacity=int(h["slot_capacity"]), booking_days=int(h.get("booking_days", 7)),
                    position=pos, queues=queues))
    return len(data["halls"])


def _date(value: Any) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def _seed_citizens(db: Session, data: dict[str, Any], cert_types: dict[str, ECertificateType]) -> tuple[int, int]:
    n_certs = 0
    for c in data["citizens"]:
        id_number = str(c["id_number"])
        if not is_valid_id18(id_number):
            raise SeedError(f"citizen {c['name']}: invalid ID number")
        db.add(RegisteredCitizen(id_number=id_number, name=c["name"], sex=c["sex"], birth_date=_date(c["birth_date"]),
                                 nation=c.get("nation"), address=c["address"], photo=c.get("photo", "placeholder")))
        for pos, e in enumerate(c.get("e_certificates", [])):
            ctype = cert_types.get(e["type"])
            if ctype is None:
                raise SeedError(f"citizen {c['name']}: unknown e-certificate type {e['type']!r}")
            data_keys = set(e.get("data", {}))
            if not data_keys <= {f["key"] for f in ctype.fields} or e["trust_level"] not in "ABCD":
                raise SeedError(f"citizen {c['name']}: {e['type']} has unknown fields or trust level")
            db.add(ECertificate(id=opaque_id("ec"), type_code=ctype.code, holder_id_number=id_number,
                                holder_name=c["name"], number=str(e["number"]), issuer=e["issuer"],
                                issued_on=_date(e["issued_on"]), valid_until=_date(e.get("valid_until")),
                                revoked=bool(e.get("revoked", False)), trust_level=e["trust_level"],
                                data={k: str(v) for k, v in e.get("data", {}).items()}, position=pos))
            n_certs += 1
    return len(data["citizens"]), n_certs


def _seed_outstanding(db: Session, data: dict[str, Any], services: dict[str, Service]) -> None:
    for a in data["applications"]:
        if not a.get("outstanding"):
            continue
        app = db.scalar(select(Application).where(Application.number == a["number"]))
        if app is None:
            continue
        materials = services[a["service"]].materials
        for item in a["outstanding"]:
            db.add(ApplicationMaterial(application_id=app.id, material_index=item["index"],
                                       name=materials[item["index"]].name, status="outstanding",
                                       note=item.get("note")))


def _seed_deliveries(db: Session, data: dict[str, Any]) -> int:
    from service_platform.numbering import daily_number, waybill_number
    from service_platform.routes.deliveries import CONSENT_VERSION

    seed_date = _date(data["seed_date"])
    count = 0
    for d in data.get("deliveries", []):
        app = db.scalar(select(Application).where(Application.number == d["application"]))
        if app is None:
            raise SeedError(f"delivery: unknown application {d['application']}")
        at = _at(seed_date, d["day"], d["time"])  # type: ignore[arg-type]
        db.add(Delivery(delivery_no=daily_number(db, "delivery", at), waybill_no=waybill_number(db),
                        application_id=app.id, owner_id_number=app.applicant_id_number,
                        recipient_name=d["recipient_name"], phone=str(d["phone"]), province=d["province"],
                        city=d["city"], district=d["district"], detail=d["detail"],
                        postcode=str(d["postcode"]) if d.get("postcode") else None,
                        consent_version=CONSENT_VERSION, consent_at=at, kiosk_id=None, created_at=at))
        count += 1
    return count


def seed(db: Session, *, demo_kiosk_key: str | None = None) -> SeedSummary:
    """Insert the catalogue, the demo kiosk, demo applications, the registry with e-certificates, halls and
    filing rules, in one transaction."""
    catalogue = load_yaml("catalogue.yaml")
    demo = load_yaml("demo.yaml")
    services = _seed_catalogue(db, catalogue)
    db.flush()
    n_apps = _seed_demo(db, demo, services, demo_kiosk_key or DEFAULT_DEMO_KIOSK_KEY)
    db.flush()
    summary = SeedSummary(seeded=True, categories=len(catalogue["categories"]), services=len(services),
                          places=len(catalogue["places"]), kiosks=len(demo["kiosks"]), applications=n_apps)
    _seed_extras(db, catalogue, demo, services, summary)
    db.commit()
    return summary
