"""Identity numbers (GB 11643 check digit) and masking of personal data for display."""
from __future__ import annotations

import datetime as dt
import re

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"
_ID18 = re.compile(r"^\d{17}[\dX]$")
_OLD_FOREIGN_PR = re.compile(r"^[A-Z]{3}\d{12}$")  # 2004-2017 外国人永久居留证, 15 characters

DOCUMENT_KINDS = ("resident_id", "hmt_residence_permit", "foreign_permanent_resident")
HMT_PREFIXES = ("810000", "820000", "830000")  # 港澳台居民居住证 公民身份号码 address codes


def normalize_id_number(value: str) -> str:
    return value.strip().upper()


def check_digit(first17: str) -> str:
    """GB 11643-1999 check character for the first 17 digits."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("need exactly 17 digits")
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS))
    return _CHECK_CHARS[total % 11]


def _birth_date_ok(id18: str) -> bool:
    try:
        born = dt.date(int(id18[6:10]), int(id18[10:12]), int(id18[12:14]))
    except ValueError:
        return False
    return dt.date(1880, 1, 1) <= born <= dt.date(2100, 1, 1)


def is_valid_id18(value: str) -> bool:
    """18-character number: format, plausible birth date and GB 11643 check digit."""
    value = normalize_id_number(value)
    return bool(_ID18.match(value)) and _birth_date_ok(value) and check_digit(value[:17]) == value[17]


def id_number_problem(value: str, document_kind: str) -> str | None:
    """Why ``value`` is not a valid number for ``document_kind`` (``None`` when it is)."""
    value = normalize_id_number(value)
    if document_kind == "foreign_permanent_resident":
        if _OLD_FOREIGN_PR.match(value):
            return None
        if len(value) == 18 and value.startswith("9"):  # 2023 format: 18 digits, GB 11643 check digit
            return None if is_valid_id18(value) else "check digit or date of birth does not match"
        return "not a foreign permanent resident ID card number"
    if not _ID18.match(value):
        return "must be 17 digits followed by a digit or X"
    if not _birth_date_ok(value):
        return "date of birth in the number is not a valid date"
    if check_digit(value[:17]) != value[17]:
        return "check digit does not match (GB 11643)"
    if document_kind == "hmt_residence_permit" and not value.startswith(HMT_PREFIXES):
        return "HMT residence permit numbers start with 810000, 820000 or 830000"
    return None


def mask_name(name: str) -> str:
    """张明华 → 张*华, 李四 → 李*, 欧阳小明 → 欧**明; the full name never leaves the platform in public payloads."""
    name = name.strip()
    if len(name) <= 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def mask_phone(phone: str) -> str:
    """13905520001 → 139****0001."""
    phone = phone.strip()
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "****"


def mask_address(province: str, city: str, district: str, detail: str) -> str:
    """Region in full, the street address cut after a few characters: 安徽省蚌埠市龙子湖区东海大道****."""
    return f"{province}{city}{district}{detail[:4]}****"
