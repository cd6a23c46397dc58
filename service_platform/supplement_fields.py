"""Form fields in a supplement (补正): a department asks for fields of the filed form to be filled in or corrected
(recorded as :class:`~service_platform.models.ApplicationFieldRequest`, names checked against the service's form
schema), the citizen supplies values (each checked against that field's part of the schema, one problem per field),
and the values are applied to the filed form.

Moving an application to ``supplement_required`` is a department's act: :func:`request_supplement`, run by
``service-platform application request-supplement`` (there is no staff route for it yet).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service_platform.forms import form_problems
from service_platform.models import (
    Application, ApplicationEvent, ApplicationFieldRequest, ApplicationFiling, ApplicationMaterial, Service,
    ServiceFilingRule)
from service_platform.schemas import OutstandingField, Problem

CLOSED = ("decided", "rejected", "delivered")


class SupplementRequestError(ValueError):
    """The supplement request names something the application or its service does not have."""


def form_schema_of(db: Session, service_id: int) -> dict[str, Any]:
    rule = db.get(ServiceFilingRule, service_id)
    return dict(rule.form_schema) if rule is not None and rule.form_schema else {}


def titles(schema: Mapping[str, Any], name: str) -> tuple[str, str]:
    sub = (schema.get("properties") or {}).get(name) or {}
    zh = str(sub.get("title") or name)
    return zh, str(sub.get("x-title-en") or zh)


def outstanding_rows(db: Session, application_id: int) -> dict[str, ApplicationFieldRequest]:
    return {r.name: r for r in db.scalars(select(ApplicationFieldRequest).where(
        ApplicationFieldRequest.application_id == application_id,
        ApplicationFieldRequest.status == "outstanding").order_by(ApplicationFieldRequest.id)).all()}


def outstanding_out(db: Session, app: Application) -> list[OutstandingField]:
    rows = outstanding_rows(db, app.id)
    if not rows:
        return []
    schema = form_schema_of(db, app.service.id)
    out = []
    for name, row in rows.items():
        zh, en = titles(schema, name)
        out.append(OutstandingField(name=name, title=zh, title_en=en, note=row.note))
    return out


def review_fields(schema: Mapping[str, Any], requested: Mapping[str, ApplicationFieldRequest],
                  values: Mapping[str, Any]) -> list[Problem]:
    """Every problem of the supplied ``values``, one per field at least: not in the form, not asked for, or not a
    value the field's part of the schema accepts."""
    props = schema.get("properties") or {}
    problems: list[Problem] = []
    checked: dict[str, Any] = {}
    for name in values:
        if name not in props:
            problems.append(Problem(code="unknown_field", field=f"/{name}", message=f"表单中没有填写项：{name}",
                                    message_en=f"The form has no field {name}"))
        elif name not in requested:
            zh, en = titles(schema, name)
            problems.append(Problem(code="field_not_requested", field=f"/{name}", message=f"“{zh}”无需补正",
                                    message_en=f"“{en}” was not asked for"))
        else:
            checked[name] = values[name]
    if checked:
        part = {**{k: v for k, v in schema.items() if k.startswith("$")}, "type": "object",
                "properties": {n: props[n] for n in checked}, "required": list(checked),
                "additionalProperties": False}
        problems += [Problem(code="form_invalid", field=p.field, message=p.message, message_en=p.message_en)
                     for p in form_problems(part, dict(checked))]
    return problems


def apply_fields(db: Session, app: Application, requested: dict[str, ApplicationFieldRequest],
                 values: Mapping[str, Any], at: dt.datetime) -> list[str]:
    """Write the checked ``values`` into the filed form and mark their requests provided; returns their titles."""
    if not values:
        return []
    filing = db.get(ApplicationFiling, app.id)
    if filing is None:
        filing = ApplicationFiling(application_id=app.id, form={})
        db.add(filing)
    filing.form = {**dict(filing.form or {}), **values}     # a new dict: the JSON column sees the change
    schema = form_schema_of(db, app.service.id)
    names = []
    for name in values:
        row = requested.pop(name)
        row.status, row.provided_at = "provided", at
        names.append(titles(schema, name)[0])
    return names


def request_supplement(db: Session, number: str, *, fields: Sequence[str] = (), materials: Sequence[int] = (),
                       note: str, now: dt.datetime) -> Application:
    """The department asks for a supplement: ``fields`` (form schema property names) and ``materials`` (indexes in
    the service guide) become outstanding, the application goes to ``supplement_required`` with ``note`` on its
    timeline. :class:`SupplementRequestError` for an unknown application, field or material, or a closed one."""
    app = db.scalar(select(Application).where(Application.number == number.strip().upper()))
    if app is None:
        raise SupplementRequestError(f"no application {number}")
    if app.status in CLOSED:
        raise SupplementRequestError(f"application {app.number} is closed ({app.status})")
    if not fields and not materials:
        raise SupplementRequestError("name at least one field or material")
    if not note.strip():
        raise SupplementRequestError("a note for the citizen is required")
    service = db.scalar(select(Service).where(Service.code == app.service_code))
    assert service is not None
    props = form_schema_of(db, service.id).get("properties") or {}
    unknown = [f for f in fields if f not in props]
    if unknown:
        raise SupplementRequestError(f"not fields of the {service.code} form: {', '.join(unknown)} "
                                     f"(known: {', '.join(props)})")
    bad = [i for i in materials if not 0 <= i < len(service.materials)]
    if bad:
        raise SupplementRequestError(f"no material {bad} in the {service.code} guide")
    for name in dict.fromkeys(fields):
        row = db.scalar(select(ApplicationFieldRequest).where(ApplicationFieldRequest.application_id == app.id,
                                                              ApplicationFieldRequest.name == name))
        if row is None:
            db.add(ApplicationFieldRequest(application_id=app.id, name=name, status="outstanding", note=note,
                                           requested_at=now))
        else:
            row.status, row.note, row.requested_at, row.provided_at = "outstanding", note, now, None
    for index in dict.fromkeys(materials):
        row = db.scalar(select(ApplicationMaterial).where(ApplicationMaterial.application_id == app.id,
                                                          ApplicationMaterial.material_index == index))
        if row is None:
            db.add(ApplicationMaterial(application_id=app.id, material_index=index, status="outstanding",
                                       name=service.materials[index].name, note=note))
        else:
            row.status, row.note, row.provided_at = "outstanding", note, None
    app.status = "supplement_required"
    db.add(ApplicationEvent(application_id=app.id, status="supplement_required", at=now, department=app.department,
                            note=note))
    db.flush()
    return app


# --- CLI: service-platform application request-supplement ------------------------------------------------------------

def add_cli(sub: Any, db_help: str) -> None:
    app = sub.add_parser("application", help="a department's acts on an application")
    asub = app.add_subparsers(dest="application_command", required=True)
    req = asub.add_parser("request-supplement", help="ask the citizen for a supplement (补正): materials and/or form "
                                                     "fields become outstanding, the status supplement_required")
    req.add_argument("--number", required=True, help="the application number, e.g. SP20261026000501")
    req.add_argument("--field", action="append", default=[], help="a form field to fill in or correct (repeat)")
    req.add_argument("--material", action="append", default=[], type=int,
                     help="a material index in the service guide (repeat)")
    req.add_argument("--note", required=True, help="what is missing or wrong, for the citizen (shown at the kiosk)")
    req.add_argument("--db", default=None, help=db_help)


def cli_command(args: argparse.Namespace) -> int:
    from service_platform.db import create_tables, make_engine, make_sessionmaker, normalize_db_url, utcnow

    engine = make_engine(normalize_db_url(args.db))
    try:
        create_tables(engine)
        with make_sessionmaker(engine)() as db:
            try:
                app = request_supplement(db, args.number, fields=args.field, materials=args.material,
                                         note=args.note, now=utcnow())
            except SupplementRequestError as exc:
                print(f"service-platform: {exc}", file=sys.stderr)
                return 1
            db.commit()
            print(json.dumps({"number": app.number, "status": app.status, "fields": list(dict.fromkeys(args.field)),
                              "materials": list(dict.fromkeys(args.material))}, ensure_ascii=False))
            return 0
    finally:
        engine.dispose()
