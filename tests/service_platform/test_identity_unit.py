"""Unit tests of the GB 11643 check digit and masking (no server)."""
from __future__ import annotations

import pytest

from service_platform.identity import check_digit, id_number_problem, is_valid_id18, mask_name


def test_seeded_citizens_have_valid_numbers(citizen_id: str) -> None:
    id_number = citizen_id
    assert check_digit(id_number[:17]) == id_number[17]
    assert is_valid_id18(id_number)


def test_check_digit_known_values() -> None:
    assert check_digit("11010519491231002") == "X"  # the GB 11643 example number
    assert check_digit("34030219580317201") == "8"
    with pytest.raises(ValueError):
        check_digit("123")


@pytest.mark.parametrize("bad", ["340302195803172019", "34030219580317201", "3403021958031720188",
                                 "340302195813172011", "34030219580317201A", ""])
def test_invalid_numbers(bad: str) -> None:
    assert not is_valid_id18(bad)
    assert id_number_problem(bad, "resident_id")


def test_document_kinds() -> None:
    assert id_number_problem("35010219490822102x", "resident_id") is None
    assert id_number_problem("810000199205082049", "hmt_residence_permit") is None
    assert id_number_problem("340302195803172018", "hmt_residence_permit")
    assert id_number_problem("USA123456789012", "foreign_permanent_resident") is None
    assert id_number_problem("340302195803172018", "foreign_permanent_resident")


def test_mask_name() -> None:
    assert mask_name("张明华") == "张*华"
    assert mask_name("李四") == "李*"
    assert mask_name("欧阳小明") == "欧**明"
    assert mask_name("王") == "*"
