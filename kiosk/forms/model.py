"""A touch form generated from a service's JSON Schema (draft 2020-12, as the platform publishes it).

Every leaf property becomes a :class:`FieldSpec` named by its JSON pointer (``/phone``, nested objects flattened:
``/emergency_contact/name``), with its labels (``title`` / ``x-title-en``), type, whether it is required, enum
values with their labels, pattern and limits, and which input the kiosk offers (a keyboard layout or choices).
:class:`Form` holds the citizen's values: pre-filled from :class:`~kiosk.platform_client.FormPrefill` (the citizen
only corrects or adds), set from what they typed, turned back into the JSON document the platform expects, and
checked by :mod:`kiosk.forms.validation`. Values are personal data: :meth:`Form.clear` drops them.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from kiosk.errors import KioskError


class InputKind(str, enum.Enum):
    """Which on-screen input a field needs."""

    TEXT = "text"          # Chinese (pinyin), Latin letters and digits
    DIGITS = "digits"      # integers, phone numbers, card numbers
    ID_NUMBER = "id_number"  # 17 digits + digit or X
    DATE = "date"          # YYYY-MM-DD on the digit keyboard
    CHOICE = "choice"      # enum: one tap per option
    BOOLEAN = "boolean"    # yes / no


class InvalidValue(KioskError):
    """What the citizen typed cannot be a value of this field (e.g. letters in a number)."""

    code = "form_invalid_value"
    translation_key = "apply.form.error.type"


@dataclass(frozen=True)
class Choice:
    value: Any
    label: str
    label_en: str


@dataclass(frozen=True)
class FieldSpec:
    pointer: str                    # JSON pointer into the form document: "/emergency_contact/phone"
    label: str                      # zh (title)
    label_en: str                   # en (x-title-en, else title)
    type: str                       # string | integer | number | boolean
    required: bool
    input: InputKind
    choices: tuple[Choice, ...] = ()
    pattern: str | None = None
    format: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    read_only: bool = False
    default: Any = None
    prefill: str | None = None      # x-prefill: identity.<field> | e_certificate.<type>.<field>
    group: str | None = None        # label of the enclosing object for nested fields (zh)
    group_en: str | None = None
    error: str | None = None        # x-error / x-error-en: the schema's own message for a wrong value
    error_en: str | None = None

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.pointer.strip("/").split("/"))

    def label_in(self, language: str) -> str:
        return self.label if language == "zh_CN" else self.label_en

    def choice_label(self, value: Any, language: str) -> str:
        for c in self.choices:
            if c.value == value:
                return c.label if language == "zh_CN" else c.label_en
        return "" if value is None else str(value)

    def parse(self, text: str) -> Any:
        """The value of what was typed (``""`` clears the field: None). Raises :class:`InvalidValue`."""
        text = text.strip()
        if text == "":
            return None
        if self.type == "integer":
            try:
                return int(text)
            except ValueError:
                raise InvalidValue(f"{self.pointer}: not an integer", label=self.label) from None
        if self.type == "number":
            try:
                return float(text)
            except ValueError:
                raise InvalidValue(f"{self.pointer}: not a number", label=self.label) from None
        if self.type == "boolean":
            return text.lower() in ("1", "true", "yes", "是")
        if self.input is InputKind.ID_NUMBER:
            return text.upper()
        return text


#: a pattern that accepts digits only: anchors, digits, digit classes ([0-9], [3-9], \\d) and quantifiers
_DIGITS_ONLY = re.compile(r"\^?(?:[0-9]|\[[0-9]-[0-9]\]|\\d|\{\d+(?:,\d*)?\}|[?*+])+\$?")


def _input_kind(sub: Mapping[str, Any], type_: str) -> InputKind:
    if "enum" in sub:
        return InputKind.CHOICE
    if type_ == "boolean":
        return InputKind.BOOLEAN
    if type_ in ("integer", "number"):
        return InputKind.DIGITS
    fmt = sub.get("format")
    if fmt == "cn-id-number":
        return InputKind.ID_NUMBER
    if fmt == "date":
        return InputKind.DATE
    pattern = str(sub.get("pattern") or "")
    if pattern and _DIGITS_ONLY.fullmatch(pattern):  # digits only: phone, card, file numbers
        return InputKind.DIGITS
    return InputKind.TEXT


def _type_of(sub: Mapping[str, Any]) -> str:
    t = sub.get("type", "string")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "string")
    return str(t)


def fields_of(schema: Mapping[str, Any]) -> list[FieldSpec]:
    """Every leaf field of a form schema, in the schema's order; nested objects are flattened (their fields follow
    each other, labelled with the object's title as ``group``). A nested field is required only if its object is."""
    out: list[FieldSpec] = []

    def walk(node: Mapping[str, Any], prefix: str, parent_required: bool, group: tuple[str, str] | None) -> None:
        required = set(node.get("required") or ())
        for name, sub in (node.get("properties") or {}).items():
            if not isinstance(sub, Mapping):
                continue
            pointer = f"{prefix}/{name}"
            is_required = parent_required and name in required
            type_ = _type_of(sub)
            title = str(sub.get("title") or name)
            title_en = str(sub.get("x-title-en") or title)
            if type_ == "object":
                walk(sub, pointer, is_required, (title, title_en))
                continue
            values = list(sub.get("enum") or ())
            zh = list(sub.get("x-enum-titles") or values)
            en = list(sub.get("x-enum-titles-en") or zh)
            choices = tuple(Choice(v, str(zh[i]) if i < len(zh) else str(v), str(en[i]) if i < len(en) else str(v))
                            for i, v in enumerate(values))
            out.append(FieldSpec(
                pointer=pointer, label=title, label_en=title_en, type=type_, required=is_required,
                input=_input_kind(sub, type_), choices=choices, pattern=sub.get("pattern"), format=sub.get("format"),
                min_length=sub.get("minLength"), max_length=sub.get("maxLength"), minimum=sub.get("minimum"),
                maximum=sub.get("maximum"), read_only=bool(sub.get("readOnly", False)), default=sub.get("default"),
                prefill=sub.get("x-prefill"), group=group[0] if group else None, group_en=group[1] if group else None,
                error=sub.get("x-error"), error_en=sub.get("x-error-en")))

    walk(schema, "", True, None)
    return out


def _get(doc: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = doc
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


@dataclass
class Form:
    """The citizen's form for one service: specs from the schema, values by pointer, where pre-filled values came
    from (``sources``: pointer → ``identity`` | ``e_certificate:<id>``) and which the citizen changed."""

    schema: dict[str, Any]
    fields: list[FieldSpec]
    values: dict[str, Any] = field(default_factory=dict, repr=False)
    sources: dict[str, str] = field(default_factory=dict)
    edited: set[str] = field(default_factory=set)

    @classmethod
    def from_schema(cls, schema: Mapping[str, Any]) -> "Form":
        if schema.get("type") != "object" or not isinstance(schema.get("properties"), Mapping):
            raise ValueError("a form schema must be an object with properties")
        form = cls(schema=dict(schema), fields=fields_of(schema))
        for spec in form.fields:
            if spec.default is not None:
                form.values[spec.pointer] = spec.default
        return form

    def spec(self, pointer: str) -> FieldSpec:
        for spec in self.fields:
            if spec.pointer == pointer:
                return spec
        raise KeyError(pointer)

    def apply_prefill(self, form: Mapping[str, Any], sources: Mapping[str, str] | None = None) -> None:
        """Take the platform's pre-filled values (FormPrefill.form/.sources); fields the citizen edited are kept."""
        for spec in self.fields:
            if spec.pointer in self.edited:
                continue
            value = _get(form, spec.path)
            if value is not None:
                self.values[spec.pointer] = value
                if sources and spec.pointer in sources:
                    self.sources[spec.pointer] = sources[spec.pointer]

    def get(self, pointer: str) -> Any:
        return self.values.get(pointer)

    def set(self, pointer: str, value: Any) -> None:
        """Set a value (None clears it). Read-only fields are refused: they come from the citizen's records."""
        spec = self.spec(pointer)
        if spec.read_only:
            raise InvalidValue(f"{pointer} is read-only", label=spec.label)
        self.edited.add(pointer)
        self.sources.pop(pointer, None)
        if value is None or value == "":
            self.values.pop(pointer, None)
        else:
            self.values[pointer] = value

    def set_text(self, pointer: str, text: str) -> None:
        """Set from what was typed on the keyboard (converted to the field's type)."""
        self.set(pointer, self.spec(pointer).parse(text))

    def display(self, pointer: str, language: str) -> str:
        """The value as shown on screen: the option's label for choices, 是/否 for booleans."""
        spec = self.spec(pointer)
        value = self.values.get(pointer)
        if value is None:
            return ""
        if spec.choices:
            return spec.choice_label(value, language)
        if spec.type == "boolean":
            return ("是" if value else "否") if language == "zh_CN" else ("Yes" if value else "No")
        return str(value)

    def to_json(self) -> dict[str, Any]:
        """The form document for the platform: nested objects rebuilt, empty values left out."""
        doc: dict[str, Any] = {}
        for spec in self.fields:
            value = self.values.get(spec.pointer)
            if value is None:
                continue
            node = doc
            *parents, last = spec.path
            for key in parents:
                node = node.setdefault(key, {})
            node[last] = value
        return doc

    def missing(self) -> list[FieldSpec]:
        return [s for s in self.fields if s.required and self.values.get(s.pointer) is None]

    def clear(self) -> None:
        """Forget every value (personal data) at session end."""
        self.values.clear()
        self.sources.clear()
        self.edited.clear()
