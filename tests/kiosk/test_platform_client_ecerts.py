"""The kiosk's platform client against the real platform server: e-certificates, their PDF, registered photos."""
from __future__ import annotations

import os
import io
from collections.abc import Iterator

import pytest
from PIL import Image

from kiosk.errors import NotFound, PlatformRejected
from kiosk.platform_client import ECertificate, PlatformClient
from kiosk.request_signing import KioskRequestSigner

CHEN, WANG = ("520302199002144027", "陈静怡"), ("230202197511053015", "王建国")


@pytest.fixture
def client(platform_server) -> Iterator[PlatformClient]:
    signer = KioskRequestSigner.from_file("KSK-340302-0001", os.environ["KIOSK_TEST_SIGNING_KEY"])
    c = PlatformClient(platform_server.url, "KSK-340302-0001", signer, timeout_s=10)
    try:
        yield c
    finally:
        c.close()


def test_types_and_my_certificates(client: PlatformClient) -> None:
    names = {t.name for t in client.e_certificate_types()}
    assert {"结婚证", "居住证", "机动车驾驶证"} <= names
    token = client.open_citizen_session(*CHEN, "resident_id", face_match=True).token
    certs = client.my_e_certificates(token)
    assert [c.type_name for c in certs] == ["居民身份证", "结婚证", "居住证"]
    assert all(isinstance(c, ECertificate) and c.holder_name_masked == "陈*怡" for c in certs)
    marriage = client.my_e_certificates(token, "结婚证")[0]
    assert marriage.trust_level == "C" and marriage.usable_as_material
    assert marriage.data["spouse_name"] == "罗建明" and "罗建明" not in repr(marriage)  # data stays out of logs
    assert client.e_certificate(token, marriage.id) == marriage
    pdf = client.e_certificate_pdf(token, marriage.id)
    # the CJK font is embedded as a subset (the whole font would be megabytes); the PAdES seal adds its signature with
    # the certificate chain and the seal image (~20 KB)
    assert pdf.startswith(b"%PDF-") and b"/ByteRange" in pdf and len(pdf) < 100_000


def test_expired_certificates_are_not_usable(client: PlatformClient) -> None:
    token = client.open_citizen_session(*WANG, "resident_id", face_match=True).token
    by_type = {c.type_code: c for c in client.my_e_certificates(token)}
    assert by_type["resident_id"].status == "expired" and not by_type["resident_id"].usable_as_material
    assert by_type["driving_licence"].usable_as_material


def test_someone_elses_certificate_is_not_found(client: PlatformClient) -> None:
    chen = client.open_citizen_session(*CHEN, "resident_id", face_match=True).token
    wang = client.open_citizen_session(*WANG, "resident_id", face_match=True).token
    cert_id = client.my_e_certificates(chen)[0].id
    with pytest.raises(NotFound):
        client.e_certificate(wang, cert_id)
    with pytest.raises(NotFound):
        client.e_certificate_pdf(wang, cert_id)


def test_registered_photo_before_and_during_a_session(client: PlatformClient) -> None:
    photo = client.registered_photo(*CHEN, "resident_id")
    assert photo is not None and photo.content_type == "image/jpeg" and photo.source == "placeholder"
    with Image.open(io.BytesIO(photo.data)) as img:
        assert img.size == (358, 441)
    assert client.registered_photo(CHEN[0], "陈静", "resident_id") is None  # name does not match: fall back
    with pytest.raises(PlatformRejected) as refused:
        client.registered_photo("520302199002144028", CHEN[1], "resident_id")
    assert refused.value.platform_code == "invalid_id_number"
    token = client.open_citizen_session(*CHEN, "resident_id", face_match=True).token
    mine = client.my_photo(token)
    assert mine is not None and mine.data == photo.data
