"""Electronic seals (电子印章): the platform's own small CA, one seal key + certificate per issuing department, and
PAdES signing of the PDFs the platform issues (pyHanko), with a visible seal image on the signature.

Layout of a seal directory (``serve --seal-dir DIR`` / env ``PLATFORM_SEAL_DIR``; made at run time by
``service-platform ca init`` or, with ``--demo``, by ``serve`` itself — never committed)::

    DIR/ca.pem           the root certificate (public: also served at /verify/ca.pem for validators)
    DIR/ca.key           the root key (PEM, 0600): only where seals may be issued on demand (demo, tests)
    DIR/seals/<id>.pem   a department's seal certificate    (<id> = first 16 hex of SHA-256 of the department name)
    DIR/seals/<id>.key   its key (PEM, 0600)

Keys are EC P-256. A seal certificate has KeyUsage digitalSignature + contentCommitment (non-repudiation), its
subject CN and O are the department's name. Without ``ca.key`` a department with no seal yet cannot sign
(:class:`SealUnavailable`, 503 ``seal_unavailable``).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "一网通办参考平台电子印章根证书 Seal Root CA"
CA_YEARS = 10
SEAL_YEARS = 3
# pyHanko's layout engine warns about the (empty) stamp text's box on every signature
logging.getLogger("pyhanko.pdf_utils.layout").setLevel(logging.ERROR)
# pyHanko imports cryptography's DSA (deprecated there); the seals are EC P-256
warnings.filterwarnings("ignore", message="DSA is deprecated", module=r"pyhanko\.")


class SealUnavailable(RuntimeError):
    """No seal for this department and no CA key to issue one (or no seal directory at all)."""


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def department_id(department: str) -> str:
    return hashlib.sha256(department.strip().encode("utf-8")).hexdigest()[:16]


def init_ca(directory: str | Path, *, now: dt.datetime | None = None) -> Path:
    """Create the root key and certificate in ``directory`` (refuses to overwrite an existing CA); returns ca.pem."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    if (root / "ca.pem").exists():
        raise FileExistsError(f"{root / 'ca.pem'} exists already")
    now = now or dt.datetime.now(dt.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "一网通办参考平台"),
                      x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=365 * CA_YEARS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    _write_private(root / "ca.key", _key_pem(key))
    (root / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (root / "seals").mkdir(exist_ok=True)
    return root / "ca.pem"


def issue_seal(directory: str | Path, department: str, *, now: dt.datetime | None = None) -> Path:
    """Issue (or re-issue) the seal key and certificate of ``department`` with the CA of ``directory``."""
    root = Path(directory)
    ca_key_path = root / "ca.key"
    if not ca_key_path.exists():
        raise SealUnavailable(f"no CA key in {root}: seals cannot be issued here")
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate((root / "ca.pem").read_bytes())
    now = now or dt.datetime.now(dt.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, department),
                      x509.NameAttribute(NameOID.COMMON_NAME, department)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=365 * SEAL_YEARS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
                           critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    seals = root / "seals"
    seals.mkdir(exist_ok=True)
    ident = department_id(department)
    _write_private(seals / f"{ident}.key", _key_pem(key))
    (seals / f"{ident}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return seals / f"{ident}.pem"


@dataclass(frozen=True)
class SealedPdf:
    data: bytes
    sha256: str


class SealKeeper:
    """The seals of one seal directory: loads (and, where the CA key is there, issues) department seals and signs
    PDFs with them. Thread-safe; signers are cached per department."""

    def __init__(self, directory: str | Path | None, *, auto_init: bool = False) -> None:
        """``auto_init`` (demo, tests): a missing CA is created on first use — in ``directory``, or without one in
        a private temporary folder removed when the keeper is garbage-collected or the process exits."""
        self.directory = Path(directory) if directory else None
        self.auto_init = auto_init
        self._signers: dict[str, object] = {}
        #: the signature space pyHanko reserved for a department's first seal (it estimates it by signing a dummy
        #: digest, ~40 % of a seal's time; the size depends only on the seal's key and certificates)
        self._reserved: dict[str, int] = {}
        self._lock = threading.RLock()

    def _ensure_ca(self) -> None:
        with self._lock:
            if self.directory is not None and (self.directory / "ca.pem").exists():
                return
            if not self.auto_init:
                return
            if self.directory is None:
                import shutil
                import tempfile
                import weakref

                self.directory = Path(tempfile.mkdtemp(prefix="platform-seal-"))
                weakref.finalize(self, shutil.rmtree, str(self.directory), True)
            init_ca(self.directory)

    @property
    def available(self) -> bool:
        self._ensure_ca()
        return self.directory is not None and (self.directory / "ca.pem").exists()

    def warm_up(self) -> None:
        """Import pyHanko, make a missing demo CA and prepare the PDFs' CJK font (pdf_fonts.py) now (the app's
        start-up calls this in a thread), so that the first sealed PDF does not pay for them."""
        try:
            import pyhanko.sign.signers  # noqa: F401
            from pyhanko import stamp  # noqa: F401
            from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter  # noqa: F401

            self._ensure_ca()
        except Exception:  # noqa: BLE001 - the request that needs a seal reports the problem (503)
            logging.getLogger(__name__).exception("seal warm-up failed")
        from service_platform import pdf_fonts

        pdf_fonts.warm_up()  # never raises: without the small font, PDFs use the full one

    def ca_pem(self) -> bytes:
        if not self.available:
            raise SealUnavailable("the platform has no seal CA (serve --seal-dir DIR; service-platform ca init)")
        assert self.directory is not None
        return (self.directory / "ca.pem").read_bytes()

    def _signer(self, department: str) -> object:
        from pyhanko.sign import signers

        with self._lock:
            if department in self._signers:
                return self._signers[department]
            self.ca_pem()
            assert self.directory is not None
            ident = department_id(department)
            cert = self.directory / "seals" / f"{ident}.pem"
            if not cert.exists():
                issue_seal(self.directory, department)
            signer = signers.SimpleSigner.load(str(self.directory / "seals" / f"{ident}.key"), str(cert),
                                               ca_chain_files=(str(self.directory / "ca.pem"),))
            if signer is None:
                raise SealUnavailable(f"the seal of {department} cannot be loaded")
            self._signers[department] = signer
            return signer

    def sign(self, pdf: bytes, department: str, *, box: tuple[float, float, float, float], page: int = 0,
             seal_png: bytes | None = None, reason: str = "电子印章 / electronic seal",
             location: str = "") -> SealedPdf:
        """Sign ``pdf`` (PAdES B-B) with ``department``'s seal in a visible field at ``box`` (PDF points, lower-left
        origin) on ``page`` (0-based; negative counts from the end), showing ``seal_png``."""
        from pyhanko import stamp
        from pyhanko.pdf_utils import images, text
        from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
        from pyhanko.sign import fields, signers
        from pyhanko.sign.fields import SigSeedSubFilter

        signer = self._signer(department)
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
        if page < 0:
            page = int(writer.root["/Pages"]["/Count"]) + page
        fields.append_signature_field(writer, fields.SigFieldSpec("Seal", box=box, on_page=page))
        meta = signers.PdfSignatureMetadata(field_name="Seal", subfilter=SigSeedSubFilter.PADES, reason=reason,
                                            location=location or None, name=department)
        style = stamp.TextStampStyle(stamp_text="", border_width=0,
                                     text_box_style=text.TextBoxStyle(font_size=1),
                                     background=images.PdfImage(_png_image(seal_png)) if seal_png else None,
                                     background_opacity=1.0)
        out = io.BytesIO()
        reserved = self._reserved.get(department)
        signers.PdfSigner(meta, signer=signer, stamp_style=style).sign_pdf(  # type: ignore[arg-type]
            writer, output=out, bytes_reserved=reserved)
        data = out.getvalue()
        if reserved is None:
            self._reserved[department] = _reserved_size(data)
        return SealedPdf(data=data, sha256=hashlib.sha256(data).hexdigest())


def _reserved_size(signed_pdf: bytes) -> int:
    """The space (hex digits) reserved for the last signature of ``signed_pdf``."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    signature = PdfFileReader(io.BytesIO(signed_pdf)).embedded_signatures[-1]
    return len(signature.sig_object["/Contents"]) * 2


def _png_image(png: bytes) -> object:
    from PIL import Image

    return Image.open(io.BytesIO(png))


def seal_image(department: str, *, size: int = 360) -> bytes:
    """A round red seal (公章 style) with the department's name around the top and a star, as an RGBA PNG."""
    import math

    from PIL import Image, ImageDraw, ImageFont

    from service_platform.ecert_pdf import find_cjk_font

    path, index = find_cjk_font()
    img = Image.new("RGBA", (size, size), (255, 255, 255, 0))
    draw = ImageDraw.Draw(img)
    red = (200, 20, 20, 235)
    margin = size * 0.04
    draw.ellipse([margin, margin, size - margin, size - margin], outline=red, width=max(3, size // 40))
    cx = cy = size / 2
    # five-pointed star in the middle
    r_out, r_in = size * 0.16, size * 0.065
    points = []
    for i in range(10):
        r = r_out if i % 2 == 0 else r_in
        a = -math.pi / 2 + i * math.pi / 5
        points.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    draw.polygon(points, fill=red)
    # the name along the upper arc
    name = department.strip()[:18]
    font = ImageFont.truetype(path, int(size * 0.085), index=index)
    radius = size / 2 - margin - size * 0.10
    span = math.radians(min(250, 22 * len(name) + 20))
    for i, ch in enumerate(name):
        angle = -math.pi / 2 - span / 2 + (span * (i + 0.5) / len(name))
        glyph = Image.new("RGBA", (int(size * 0.12), int(size * 0.12)), (255, 255, 255, 0))
        ImageDraw.Draw(glyph).text((glyph.width / 2, glyph.height / 2), ch, font=font, fill=red, anchor="mm")
        glyph = glyph.rotate(-math.degrees(angle + math.pi / 2), resample=Image.BICUBIC)
        x = cx + radius * math.cos(angle) - glyph.width / 2
        y = cy + radius * math.sin(angle) - glyph.height / 2
        img.alpha_composite(glyph, (int(x), int(y)))
    small = ImageFont.truetype(path, int(size * 0.075), index=index)
    draw.text((cx, cy + size * 0.27), "电子印章", font=small, fill=red, anchor="mm")
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()
