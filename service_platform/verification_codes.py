"""Verification codes (验证码) of issued documents: 15 random Crockford base32 characters (75 bits, unguessable) and
one check character (Luhn mod 32), shown as four groups of four (``K7QM-3XVA-9PDR-T2W5``). Typing is forgiving:
case, dashes and spaces do not matter, ``O`` reads as ``0`` and ``I``/``L`` as ``1``; a mistyped character or two
swapped neighbours fail the check (all but 0↔Z, the one pair Luhn mod N cannot see), so a typo is told apart from an
unknown code without a database lookup; the lookup itself finds nothing for the rest."""
from __future__ import annotations

import re
import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_TYPOS = str.maketrans({"O": "0", "I": "1", "L": "1"})
_SHAPE = re.compile(r"^[0-9A-Z]{16}$")
BODY_LENGTH = 15


def check_char(body: str) -> str:
    """Luhn mod N (N = 32) over ``body``."""
    factor, total, n = 2, 0, len(ALPHABET)
    for ch in reversed(body):
        addend = factor * _VALUE[ch]
        factor = 1 if factor == 2 else 2
        total += addend // n + addend % n
    return ALPHABET[(n - total % n) % n]


def new_code() -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(BODY_LENGTH))
    return format_code(body + check_char(body))


def format_code(raw: str) -> str:
    return "-".join(raw[i:i + 4] for i in range(0, 16, 4))


def normalize(typed: str) -> str | None:
    """The canonical ``XXXX-XXXX-XXXX-XXXX`` form of a typed code, or None when it cannot be one (wrong length,
    characters or check character)."""
    raw = re.sub(r"[\s-]", "", typed or "").upper().translate(_TYPOS)
    if not _SHAPE.match(raw) or any(c not in _VALUE for c in raw):
        return None
    if check_char(raw[:BODY_LENGTH]) != raw[BODY_LENGTH]:
        return None
    return format_code(raw)
