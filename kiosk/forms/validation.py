"""Check a :class:`~kiosk.forms.model.Form` against its JSON Schema with ``jsonschema`` and map every error to the
field it concerns, with a translation key and placeholders (or the schema's own ``x-error`` text), so the citizen
sees all problems at once next to the fields — before the platform's pre-review is even asked.

The platform's pre-review problems (:class:`~kiosk.platform_client.Problem`, with a JSON pointer) map onto the same
:class:`FieldError`, so the screen shows one kind of message whoever found the problem.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from drivers.idcard.identity import validate_id_number
from kiosk.forms.model import FieldSpec, Form

FORMAT_CHECKER = FormatChecker()


@FORMAT_CHECKER.checks("cn-id-number")
def _cn_id_number(value: object) -> bool:
    """17 digits with a real birth date and a GB 11643 check character (the card reader's rule, as the
    platform's)."""
    return not isinstance(value, str) or validate_id_number(value.upper())


#: validator keyword → translation key under apply.form.error
_KEYS = {"required": "required", "type": "type", "enum": "enum", "const": "enum", "pattern": "pattern",
         "format": "format", "minLength": "min_length", "maxLength": "max_length", "minimum": "minimum",
         "maximum": "maximum", "additionalProperties": "unknown"}


@dataclass(frozen=True)
class FieldError:
    """One problem of one field (``pointer``; ``""`` for the form as a whole)."""

    pointer: str
    code: str                                  # the jsonschema keyword (required, pattern, …) or the platform's code
    translation_key: str
    placeholders: dict[str, Any] = field(default_factory=dict)
    message: str | None = None                 # fixed text (schema x-error, platform message), zh
    message_en: str | None = None

    def text(self, translator: Any) -> str:
        """The citizen's text in the translator's language."""
        if self.message is not None:
            return translator.pick({"zh_CN": self.message, "en": self.message_en or self.message})
        placeholders = dict(self.placeholders)
        labels = placeholders.pop("labels", None)
        if labels:
            placeholders["label"] = translator.pick(labels)
        return translator.t(self.translation_key, **placeholders)


def _pointer(path: Iterable[Any]) -> str:
    return "".join(f"/{p}" for p in path)


def _labels(specs: Mapping[str, FieldSpec], pointer: str, name: str) -> dict[str, str]:
    spec = specs.get(pointer)
    return {"zh_CN": spec.label, "en": spec.label_en} if spec else {"zh_CN": name, "en": name}


def _errors_of(error: ValidationError, specs: Mapping[str, FieldSpec]) -> list[FieldError]:
    path = list(error.absolute_path)
    keyword = str(error.validator)
    key = "apply.form.error." + _KEYS.get(keyword, "invalid")
    if keyword == "required":
        instance = error.instance if isinstance(error.instance, Mapping) else {}
        out = []
        for name in error.validator_value:
            if name in instance:
                continue
            pointer = _pointer([*path, name])
            # a missing object: its required leaves are what the citizen fills in
            leaves = [s for s in specs.values() if s.pointer.startswith(pointer + "/")]
            for spec in leaves or [None]:
                p = spec.pointer if spec else pointer
                out.append(FieldError(p, keyword, key, {"labels": _labels(specs, p, str(name))}))
        return out
    if keyword == "additionalProperties":
        instance = error.instance if isinstance(error.instance, Mapping) else {}
        allowed = set((error.schema or {}).get("properties") or {}) if isinstance(error.schema, Mapping) else set()
        return [FieldError(_pointer([*path, n]), keyword, key, {"labels": {"zh_CN": n, "en": n}})
                for n in instance if n not in allowed]
    pointer = _pointer(path)
    spec = specs.get(pointer)
    if spec is not None and spec.error and keyword not in ("type",):
        return [FieldError(pointer, keyword, key, message=spec.error, message_en=spec.error_en)]
    placeholders: dict[str, Any] = {"labels": _labels(specs, pointer, str(path[-1]) if path else "")}
    if keyword in ("minLength", "maxLength", "minimum", "maximum"):
        placeholders["limit"] = error.validator_value
    return [FieldError(pointer, keyword, key, placeholders)]


def validate(form: Form) -> list[FieldError]:
    """Every problem of the form, in the order of its fields (form-wide ones first), without duplicates."""
    specs = {s.pointer: s for s in form.fields}
    order = {s.pointer: i for i, s in enumerate(form.fields)}
    validator = Draft202012Validator(form.schema, format_checker=FORMAT_CHECKER)
    seen: set[tuple[str, str]] = set()
    out: list[FieldError] = []
    for error in validator.iter_errors(form.to_json()):
        for fe in _errors_of(error, specs):
            if (fe.pointer, fe.code) not in seen:
                seen.add((fe.pointer, fe.code))
                out.append(fe)
    return sorted(out, key=lambda e: order.get(e.pointer, -1 if not e.pointer else len(order)))


def set_field(form: Form, pointer: str, value: Any, typed: bool = True) -> list[FieldError]:
    """Set one field (``typed``: the keyboard's text, converted to the field's type; else the value itself, e.g. a
    choice) and return that field's problems now — "required" aside, the form is still being filled. Raises
    :class:`~kiosk.forms.model.InvalidValue` for text the field's type cannot take."""
    if typed:
        form.set_text(pointer, str(value))
    else:
        form.set(pointer, value)
    return [e for e in validate(form) if e.pointer == pointer and e.code != "required"]


def from_problems(problems: Iterable[Any]) -> list[FieldError]:
    """The platform's pre-review problems about form fields (those with a ``field`` pointer) as field errors."""
    return [FieldError(p.field, p.code, "apply.form.error.invalid", message=p.message or None,
                       message_en=p.message_en or None) for p in problems if getattr(p, "field", None)]


def by_field(errors: Iterable[FieldError]) -> dict[str, list[FieldError]]:
    out: dict[str, list[FieldError]] = {}
    for e in errors:
        out.setdefault(e.pointer, []).append(e)
    return out
