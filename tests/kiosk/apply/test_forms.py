"""Forms from the services' JSON Schemas: fields, prefill, the citizen's edits, validation mapped to fields and
translated. Schemas are the seeded catalogue's own (read from the platform's seed file, as the API serves them)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kiosk.forms import Form, InputKind, InvalidValue, by_field, from_problems, validate
from kiosk.i18n import Translator
from kiosk.platform_client import Problem

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def schemas() -> dict[str, dict]:
    catalogue = yaml.safe_load((ROOT / "service_platform" / "seed" / "catalogue.yaml").read_text("utf-8"))
    return {s["code"]: s["filing"]["form_schema"] for s in catalogue["services"] if "filing" in s}


def test_fields_from_schema_with_labels_types_and_inputs(schemas) -> None:
    form = Form.from_schema(schemas["id-card-renewal"])
    by = {f.pointer: f for f in form.fields}
    assert list(by) == ["/name", "/reason", "/address", "/phone", "/pickup", "/temporary_id"]
    assert by["/name"].read_only and by["/name"].prefill == "identity.name"
    assert (by["/phone"].label, by["/phone"].label_en) == ("联系电话", "Mobile phone")
    assert by["/phone"].input is InputKind.DIGITS and by["/phone"].required
    assert by["/reason"].input is InputKind.CHOICE
    assert [(c.value, c.label, c.label_en) for c in by["/pickup"].choices] == [
        ("window", "窗口领取", "Collect at the window"), ("ems", "EMS邮寄到家", "EMS to my address")]
    assert by["/address"].input is InputKind.TEXT and by["/address"].max_length == 100
    assert by["/temporary_id"].input is InputKind.BOOLEAN and form.get("/temporary_id") is False  # default


def test_nested_objects_are_flattened_and_rebuilt(schemas) -> None:
    form = Form.from_schema(schemas["senior-card"])
    by = {f.pointer: f for f in form.fields}
    contact = by["/emergency_contact/name"]
    assert contact.group == "紧急联系人" and contact.required and by["/emergency_contact/phone"].required
    assert by["/birth_date"].input is InputKind.DATE
    form.set_text("/emergency_contact/name", "刘桂芳")
    form.set_text("/emergency_contact/phone", "13905520001")
    assert form.to_json() == {"emergency_contact": {"name": "刘桂芳", "phone": "13905520001"}}


def test_id_numbers_and_integers(schemas) -> None:
    form = Form.from_schema(schemas["birth-registration"])
    assert form.spec("/spouse_id_number").input is InputKind.ID_NUMBER
    assert form.spec("/child_order").input is InputKind.DIGITS
    form.set_text("/child_order", " 2 ")
    assert form.get("/child_order") == 2
    with pytest.raises(InvalidValue):
        form.set_text("/child_order", "二")
    form.set_text("/spouse_id_number", "52030219880611301x")
    assert form.get("/spouse_id_number") == "52030219880611301X"


def test_prefill_keeps_the_citizens_edits_and_sources(schemas) -> None:
    form = Form.from_schema(schemas["birth-registration"])
    form.set_text("/spouse_name", "罗建华")  # the citizen corrected it before the prefill arrived
    form.apply_prefill({"spouse_name": "罗建明", "spouse_id_number": "520302198806113010"},
                       {"/spouse_name": "e_certificate:ec1", "/spouse_id_number": "e_certificate:ec1"})
    assert form.get("/spouse_name") == "罗建华" and "/spouse_name" not in form.sources
    assert form.get("/spouse_id_number") == "520302198806113010"
    assert form.sources["/spouse_id_number"] == "e_certificate:ec1"
    form.set_text("/spouse_id_number", "")
    assert form.get("/spouse_id_number") is None and "/spouse_id_number" not in form.sources


def test_read_only_fields_come_from_records_only(schemas) -> None:
    form = Form.from_schema(schemas["hukou-certificate"])
    form.apply_prefill({"address": "安徽省蚌埠市龙子湖区东海大道1号"})
    with pytest.raises(InvalidValue):
        form.set_text("/address", "别处")
    assert form.display("/address", "zh_CN") == "安徽省蚌埠市龙子湖区东海大道1号"


def test_validation_maps_every_error_to_its_field_in_order(schemas) -> None:
    form = Form.from_schema(schemas["birth-registration"])
    form.apply_prefill({"spouse_name": "罗", "spouse_id_number": "520302198806113011"})  # too short, bad check digit
    form.set_text("/child_order", "9")
    errors = validate(form)
    assert [(e.pointer, e.code) for e in errors] == [
        ("/spouse_name", "minLength"), ("/spouse_id_number", "format"), ("/child_order", "maximum"),
        ("/phone", "required")]
    zh, en = Translator("zh_CN"), Translator("en")
    texts = {e.pointer: e.text(zh) for e in errors}
    assert texts["/spouse_name"] == "“配偶姓名”至少填写2个字"
    assert texts["/spouse_id_number"] == "请填写正确的18位身份证号码"  # the schema's x-error
    assert texts["/child_order"] == "“本次登记为第几个子女”不能大于5"
    assert texts["/phone"] == "请填写“联系电话”"
    assert errors[3].text(en) == "Please fill in “Mobile phone”"
    assert errors[1].text(en) == "Enter a valid 18-character ID number"


def test_valid_form_and_conditional_requirements(schemas) -> None:
    form = Form.from_schema(schemas["hukou-certificate"])
    form.set("/purpose", "other")
    assert [e.pointer for e in validate(form)] == ["/purpose_note"]  # if purpose == other then a note is required
    form.set_text("/purpose_note", "办理签证")
    assert validate(form) == []
    assert form.to_json() == {"purpose": "other", "purpose_note": "办理签证", "copies": 1}


def test_missing_nested_object_names_its_required_leaves(schemas) -> None:
    form = Form.from_schema(schemas["senior-card"])
    form.set("/pickup", "ems")
    form.set_text("/phone", "13905520001")
    errors = by_field(validate(form))
    assert set(errors) == {"/emergency_contact/name", "/emergency_contact/phone"}
    assert errors["/emergency_contact/name"][0].text(Translator("zh_CN")) == "请填写“紧急联系人姓名”"


def test_platform_problems_map_onto_fields() -> None:
    problems = [Problem("form_invalid", "请填写“联系电话”", "Please fill in “Mobile phone”", field="/phone"),
                Problem("material_missing", "缺少材料", "Material missing", material_index=1)]
    errors = from_problems(problems)
    assert [(e.pointer, e.text(Translator("en"))) for e in errors] == [("/phone", "Please fill in “Mobile phone”")]


def test_clear_forgets_personal_data(schemas) -> None:
    form = Form.from_schema(schemas["birth-registration"])
    form.apply_prefill({"spouse_name": "罗建明"}, {"/spouse_name": "e_certificate:x"})
    form.set_text("/phone", "13905520003")
    form.clear()
    assert form.values == {} and form.sources == {} and form.edited == set()
