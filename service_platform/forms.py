"""Application forms: one JSON Schema (draft 2020-12) per service drives the kiosk's form and checks what it sends.

Besides the standard keywords a schema may carry annotations for the kiosk:

* ``title`` (Chinese label) and ``x-title-en``; ``x-enum-titles`` / ``x-enum-titles-en`` label ``enum`` values;
* ``x-error`` / ``x-error-en``: the message when the field is filled in wrongly (e.g. "请填写11位手机号码");
* ``x-prefill``: where the platform can pre-fill the value from — ``identity.<name|id_number|sex|birth_date|address>``
  or ``e_certificate.<type code>.<field key>`` (the citizen's valid certificate of that type);
* ``format: cn-id-number``: an 18-character number with a valid GB 11643 check digit.

:func:`form_problems` turns every validation error into a problem with the field's JSON pointer and zh/en messages,
so the citizen is told everything at once (一次性告知).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError, ValidationError

from service_platform.identity import is_valid_id18

FORMAT_CHECKER = FormatChecker()
PREFILL_IDENTITY_FIELDS = ("name", "id_number", "sex", "birth_date", "address")


@FORMAT_CHECKER.checks("cn-id-number")
def _cn_id_number(value: object) -> bool:
    return not isinstance(value, str) or is_valid_id18(value)


@dataclass(frozen=True)
class FormProblem:
    field: str
    message: str
    message_en: str


def check_schema(schema: Mapping[str, Any], *, cert_fields: Mapping[str, set[str]] | None = None) -> None:
    """Raise ``ValueError`` when ``schema`` is not a usable form schema (checked when the catalogue is seeded)."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"invalid JSON Schema: {exc.message}") from exc
    if schema.get("type") != "object" or not isinstance(schema.get("properties"), dict):
        raise ValueError("a form schema must be an object with properties")
    for pointer, sub in _walk(schema):
        source = sub.get("x-prefill")
        if source is None:
            continue
        parts = str(source).split(".")
        ok = (len(parts) == 2 and parts[0] == "identity" and parts[1] in PREFILL_IDENTITY_FIELDS) or (
            len(parts) == 3 and parts[0] == "e_certificate" and cert_fields is not None
            and parts[2] in cert_fields.get(parts[1], set()))
        if not ok:
            raise ValueError(f"{pointer}: unknown x-prefill source {source!r}")


def _walk(schema: Mapping[str, Any], pointer: str = "") -> Iterable[tuple[str, Mapping[str, Any]]]:
    for name, sub in (schema.get("properties") or {}).items():
        if isinstance(sub, Mapping):
            yield f"{pointer}/{name}", sub
            if sub.get("type") == "object":
                yield from _walk(sub, f"{pointer}/{name}")


def _pointer(path: Iterable[Any]) -> str:
    return "".join(f"/{p}" for p in path)


def _titles(sub: Mapping[str, Any], fallback: str) -> tuple[str, str]:
    zh = str(sub.get("title") or fallback)
    return zh, str(sub.get("x-title-en") or sub.get("title") or fallback)


def _problems_of(error: ValidationError) -> list[FormProblem]:
    path = list(error.absolute_path)
    sub: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    if error.validator == "required":
        props = sub.get("properties") or {}
        instance = error.instance if isinstance(error.instance, Mapping) else {}
        out = []
        for name in error.validator_value:
            if name not in instance:
                zh, en = _titles(props.get(name) or {}, str(name))
                out.append(FormProblem(_pointer([*path, name]), f"请填写“{zh}”", f"Please fill in “{en}”"))
        return out
    if error.validator == "additionalProperties":
        allowed = set(sub.get("properties") or {})
        instance = error.instance if isinstance(error.instance, Mapping) else {}
        return [FormProblem(_pointer([*path, name]), f"不支持的填写项：{name}", f"Unknown field: {name}")
                for name in instance if name not in allowed]
    zh, en = _titles(sub, str(path[-1]) if path else "表单")
    if sub.get("x-error"):
        return [FormProblem(_pointer(path), str(sub["x-error"]), str(sub.get("x-error-en") or sub["x-error"]))]
    value = error.validator_value
    messages = {
        "type": (f"“{zh}”的填写类型不正确", f"“{en}” has the wrong type"),
        "enum": (f"“{zh}”请从选项中选择", f"“{en}”: choose one of the options"),
        "const": (f"“{zh}”请从选项中选择", f"“{en}”: choose one of the options"),
        "pattern": (f"“{zh}”格式不正确", f"“{en}” is not in the right format"),
        "format": (f"“{zh}”格式不正确", f"“{en}” is not in the right format"),
        "minLength": (f"“{zh}”至少填写{value}个字", f"“{en}” needs at least {value} characters"),
        "maxLength": (f"“{zh}”最多填写{value}个字", f"“{en}” allows at most {value} characters"),
        "minimum": (f"“{zh}”不能小于{value}", f"“{en}” must be at least {value}"),
        "maximum": (f"“{zh}”不能大于{value}", f"“{en}” must be at most {value}"),
    }
    msg_zh, msg_en = messages.get(str(error.validator), (f"“{zh}”填写不正确", f"“{en}” is not valid"))
    return [FormProblem(_pointer(path), msg_zh, msg_en)]


def form_problems(schema: Mapping[str, Any], form: Any) -> list[FormProblem]:
    """Every problem of ``form`` against ``schema``, in the order of the schema's fields, without duplicates."""
    validator = Draft202012Validator(schema, format_checker=FORMAT_CHECKER)
    order = {f"/{name}": i for i, name in enumerate(schema.get("properties") or {})}
    seen: set[tuple[str, str]] = set()
    out: list[FormProblem] = []
    for error in validator.iter_errors(form):
        for problem in _problems_of(error):
            if (problem.field, problem.message) not in seen:
                seen.add((problem.field, problem.message))
                out.append(problem)

    def key(p: FormProblem) -> tuple[int, str]:
        if not p.field:
            return -1, ""  # the form as a whole
        return order.get("/" + p.field.split("/")[1], len(order)), p.field  # unknown fields last

    return sorted(out, key=key)


@dataclass
class Prefill:
    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)


def prefill(schema: Mapping[str, Any], identity: Mapping[str, Any],
            certificates: Mapping[str, tuple[str, Mapping[str, Any]]]) -> Prefill:
    """Values for the fields that say ``x-prefill``: ``identity`` maps identity field → value; ``certificates``
    maps a type code → (certificate id, its data). ``sources`` maps each filled pointer to where it came from."""
    out = Prefill()
    for pointer, sub in _walk(schema):
        source = sub.get("x-prefill")
        if not source:
            continue
        parts = str(source).split(".")
        value: Any = None
        origin = ""
        if parts[0] == "identity" and identity.get(parts[1]) not in (None, ""):
            value, origin = identity[parts[1]], "identity"
        elif parts[0] == "e_certificate" and parts[1] in certificates:
            cert_id, data = certificates[parts[1]]
            if data.get(parts[2]) not in (None, ""):
                value, origin = data[parts[2]], f"e_certificate:{cert_id}"
        if origin:
            node = out.values
            *parents, last = pointer.strip("/").split("/")
            for name in parents:
                node = node.setdefault(name, {})
            node[last] = value
            out.sources[pointer] = origin
    return out
