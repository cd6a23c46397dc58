"""Masking of personal data. Anything that leaves a session (audit journal, logs, telemetry) goes through here.

ID numbers appear as ``3403**********2018`` (first four, last four); names are masked by their source (the
identity document, the platform) as ``张*华``. :func:`scrub` finds ID-like
numbers in free text, and :class:`ScrubbingFilter` applies it to every log record as a last line of defence.
"""
from __future__ import annotations

import logging
import re

from drivers.idcard.identity import mask_middle

# 17 digits + check digit (resident/HMT ids), and 15-digit old-style numbers; bounded so longer digit runs don't match
_ID_RE = re.compile(r"(?<![0-9A-Za-z])(\d{6})(\d{8})(\d{3})([0-9Xx])(?![0-9A-Za-z])")


def mask_id_number(id_number: str) -> str:
    """``340302195803172018`` → ``3403**********2018`` (same length, as the identity document masks itself)."""
    return mask_middle(id_number, 4)


def scrub(text: str) -> str:
    """Mask every ID-number-like run of digits in ``text``."""
    return _ID_RE.sub(lambda m: mask_id_number(m.group(0)), text)


def contains_id_number(text: str) -> bool:
    return bool(_ID_RE.search(text))


class ScrubbingFilter(logging.Filter):
    """Logging filter that masks ID numbers in the formatted message (names cannot be found by pattern: code must
    never log them, and tests check it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if contains_id_number(message):
            record.msg, record.args = scrub(message), None
        return True
