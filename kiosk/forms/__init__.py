"""Forms generated from a service's JSON Schema: :class:`Form` (fields, pre-filled values, the citizen's edits) and
:func:`validate` (every error mapped to its field, translated)."""
from kiosk.forms.model import Choice, FieldSpec, Form, InputKind, InvalidValue, fields_of
from kiosk.forms.validation import FieldError, by_field, from_problems, set_field, validate

__all__ = ["Choice", "FieldError", "FieldSpec", "Form", "InputKind", "InvalidValue", "by_field", "fields_of",
           "from_problems", "set_field", "validate"]
