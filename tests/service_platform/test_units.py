"""Unit tests (no server): form problems and pre-fill, S10 waybill numbers, URL normalisation, photo sources."""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from service_platform.app import create_app
from service_platform.db import make_engine, normalize_db_url
from service_platform.forms import check_schema, form_problems, prefill
from service_platform.numbering import is_valid_s10, s10_check_digit
from service_platform.photos import FilePhoto, Person, PhotoRegistry, load_photo_map

SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["phone", "contact"],
    "properties": {
        "name": {"type": "string", "title": "姓名", "x-prefill": "identity.name"},
        "phone": {"type": "string", "title": "联系电话", "x-title-en": "Phone", "pattern": "^1[3-9][0-9]{9}$",
                  "x-error": "请填写11位手机号码", "x-error-en": "Enter an 11-digit mobile number"},
        "contact": {"type": "object", "title": "联系人", "required": ["name"],
                    "properties": {"name": {"type": "string", "title": "联系人姓名", "minLength": 2},
                                   "address": {"type": "string", "title": "地址",
                                               "x-prefill": "e_certificate.hukou_book.address"}}},
        "spouse": {"type": "string", "title": "配偶身份证号", "format": "cn-id-number"},
        "count": {"type": "integer", "title": "份数", "minimum": 1, "maximum": 3},
    },
}


def test_form_problems_come_all_at_once_in_field_order() -> None:
    problems = form_problems(SCHEMA, {"count": 9, "phone": "12", "contact": {"name": "王"}, "spouse": "110",
                                      "zzz": 1})
    assert [(p.field, p.message) for p in problems] == [
        ("/phone", "请填写11位手机号码"), ("/contact/name", "“联系人姓名”至少填写2个字"),
        ("/spouse", "“配偶身份证号”格式不正确"), ("/count", "“份数”不能大于3"), ("/zzz", "不支持的填写项：zzz")]
    assert [p.field for p in form_problems(SCHEMA, {})] == ["/phone", "/contact"]
    assert form_problems(SCHEMA, {"phone": "13905520001", "contact": {"name": "王五"},
                                  "spouse": "340302196001052027"}) == []
    assert form_problems(SCHEMA, [])[0].field == ""  # the form itself has the wrong type


def test_prefill_and_its_sources() -> None:
    filled = prefill(SCHEMA, {"name": "张明华"}, {"hukou_book": ("ec_1", {"address": "东海大道1号"})})
    assert filled.values == {"name": "张明华", "contact": {"address": "东海大道1号"}}
    assert filled.sources == {"/name": "identity", "/contact/address": "e_certificate:ec_1"}
    assert prefill(SCHEMA, {}, {}).values == {}


def test_schema_checks() -> None:
    check_schema(SCHEMA, cert_fields={"hukou_book": {"address"}})
    with pytest.raises(ValueError, match="x-prefill"):
        check_schema(SCHEMA, cert_fields={"hukou_book": {"household_no"}})
    with pytest.raises(ValueError, match="object"):
        check_schema({"type": "string"})
    with pytest.raises(ValueError, match="invalid JSON Schema"):
        check_schema({"type": "object", "properties": {"a": {"type": "nonsense"}}})


def test_s10_waybill_numbers() -> None:
    assert s10_check_digit("47312482") == "9"  # the UPU S10 example AA473124829GB
    assert is_valid_s10("AA473124829GB") and not is_valid_s10("AA473124828GB") and not is_valid_s10("AA47312482GB")


def test_database_urls() -> None:
    assert normalize_db_url("postgresql://u@h:5/db") == "postgresql+psycopg://u@h:5/db"
    assert normalize_db_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_db_url("sqlite:///x.db") == "sqlite:///x.db"
    assert normalize_db_url("rel/p.db").startswith("sqlite:////")
    assert make_engine("sqlite://").hide_parameters  # SQL errors never carry personal data into logs


def jpeg_of(color: str, size: tuple[int, int] = (300, 400), fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format=fmt)
    return buf.getvalue()


def test_photo_source_is_chosen_per_identity(tmp_path: Path) -> None:
    face = tmp_path / "faces" / "zhang.png"
    face.parent.mkdir()
    face.write_bytes(jpeg_of("red"))
    photo_map = tmp_path / "photos.yaml"
    photo_map.write_text('identities:\n  "340302195803172018": faces/zhang.png\n  "530102198306301518": gone.jpg\n')
    registry = load_photo_map(photo_map)
    zhang = registry.photo(Person("340302195803172018", "male", "placeholder"))
    assert zhang is not None and zhang.source == "file" and zhang.content_type == "image/jpeg"
    with Image.open(io.BytesIO(zhang.data)) as img:
        assert img.format == "JPEG" and img.getpixel((10, 10))[0] > 200  # the red test photo, as JPEG
    assert registry.photo(Person("530102198306301518", "male", "placeholder")) is None  # missing file
    other = registry.photo(Person("520302199002144027", "female", "placeholder"))
    assert other is not None and other.source == "placeholder"
    jpeg = tmp_path / "li.jpg"
    jpeg.write_bytes(jpeg_of("blue", fmt="JPEG"))
    by_row = PhotoRegistry().photo(Person("35010219490822102X", "female", str(jpeg)))  # the registry row names a file
    assert by_row is not None and by_row.data == jpeg.read_bytes()
    assert FilePhoto(tmp_path / "nothing.jpg").photo(Person("x", "male", "")) is None


def test_app_serves_the_configured_photos(tmp_path: Path, kiosk_key_pair: Any, kiosk_auth: Any) -> None:
    face = tmp_path / "wang.jpg"
    face.write_bytes(jpeg_of("green", fmt="JPEG"))
    photo_map = tmp_path / "photos.yaml"
    photo_map.write_text(f'default: placeholder\nidentities:\n  "230202197511053015": {face}\n')
    app = create_app(str(tmp_path / "p.db"), demo=True,
                     demo_kiosk_public_key=kiosk_key_pair.public_key_file.read_bytes(),
                     photo_source=load_photo_map(photo_map))
    with TestClient(app) as c:
        c.auth = kiosk_auth
        r = c.post("/api/v1/registered-photos/query",
                   json={"id_number": "230202197511053015", "name": "王建国", "document_kind": "resident_id"})
        assert r.status_code == 200 and r.content == face.read_bytes() and r.headers["x-photo-source"] == "file"
        r = c.post("/api/v1/registered-photos/query",
                   json={"id_number": "520302199002144027", "name": "陈静怡", "document_kind": "resident_id"})
        assert r.headers["x-photo-source"] == "placeholder"
    app.state.engine.dispose()
