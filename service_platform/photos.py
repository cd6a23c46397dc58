"""Registered photos (the population registry's photo of a person) that kiosks compare live faces with.

The source is pluggable per identity: :class:`PhotoSource` answers ``photo(person)``; :class:`PhotoRegistry` picks
a source per ID number (``overrides``), else by the registry row's ``photo`` field (``placeholder`` or a file path),
else the default. :class:`PlaceholderPhotos` draws a plain passport-style portrait (deterministic per person) — good
enough for the flow, not for face matching; :class:`FilePhoto` serves a real image file (test photos from packages).

A photo map file (``service-platform serve --photos FILE`` or env ``PLATFORM_PHOTOS``) overrides sources::

    default: placeholder               # or a file path used for everyone not listed
    identities:
      "340302195803172018": /usr/lib/python3/dist-packages/skimage/data/astronaut.png
"""
from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import yaml
from PIL import Image, ImageDraw

PHOTO_SIZE = (358, 441)  # 二代证 registry photos: 358 × 441 px, 3:4-ish, light background


@dataclass(frozen=True)
class Photo:
    data: bytes
    content_type: str
    source: str  # "placeholder" | "file"


@dataclass(frozen=True)
class Person:
    id_number: str
    sex: str
    photo: str  # the registry row's photo field


class PhotoSource(Protocol):
    def photo(self, person: Person) -> Photo | None: ...


class PlaceholderPhotos:
    """A drawn head-and-shoulders silhouette on a light background, colours derived from the ID number."""

    def __init__(self) -> None:
        self._cache: dict[str, Photo] = {}

    def photo(self, person: Person) -> Photo:
        cached = self._cache.get(person.id_number)
        if cached is not None:
            return cached
        seed = hashlib.sha256(f"photo:{person.id_number}".encode()).digest()
        w, h = PHOTO_SIZE
        img = Image.new("RGB", PHOTO_SIZE, (235, 242, 250))
        draw = ImageDraw.Draw(img)
        skin = (200 + seed[0] % 40, 160 + seed[1] % 40, 130 + seed[2] % 40)
        cloth = (40 + seed[3] % 120, 50 + seed[4] % 100, 70 + seed[5] % 120)
        hair = (20 + seed[6] % 60,) * 3
        draw.ellipse((w * 0.08, h * 0.68, w * 0.92, h * 1.25), fill=cloth)  # shoulders
        draw.rectangle((w * 0.42, h * 0.52, w * 0.58, h * 0.72), fill=skin)  # neck
        draw.ellipse((w * 0.28, h * 0.16, w * 0.72, h * 0.62), fill=skin)  # face
        top = h * (0.12 if person.sex == "male" else 0.10)
        draw.chord((w * 0.26, top, w * 0.74, h * 0.48), 180, 360, fill=hair)  # hair
        if person.sex != "male":
            draw.rectangle((w * 0.26, h * 0.29, w * 0.31, h * 0.62), fill=hair)
            draw.rectangle((w * 0.69, h * 0.29, w * 0.74, h * 0.62), fill=hair)
        for x in (0.41, 0.59):  # eyes
            draw.ellipse((w * x - 7, h * 0.37 - 4, w * x + 7, h * 0.37 + 4), fill=(40, 40, 40))
        draw.arc((w * 0.43, h * 0.46, w * 0.57, h * 0.53), 20, 160, fill=(150, 70, 70), width=3)  # mouth
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=85)
        photo = Photo(buf.getvalue(), "image/jpeg", "placeholder")
        if len(self._cache) < 1024:
            self._cache[person.id_number] = photo
        return photo


class FilePhoto:
    """One image file, served as JPEG (PNG and other formats are converted once)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._photo: Photo | None = None

    def photo(self, person: Person) -> Photo | None:
        if self._photo is None:
            if not self.path.is_file():
                return None
            raw = self.path.read_bytes()
            if raw[:3] == b"\xff\xd8\xff":
                self._photo = Photo(raw, "image/jpeg", "file")
            else:
                with Image.open(io.BytesIO(raw)) as img:
                    buf = io.BytesIO()
                    img.convert("RGB").save(buf, format="JPEG", quality=92)
                self._photo = Photo(buf.getvalue(), "image/jpeg", "file")
        return self._photo


class PhotoRegistry:
    """Chooses the source per identity: ``overrides[id_number]``, else the registry row's ``photo`` field."""

    def __init__(self, overrides: Mapping[str, PhotoSource] | None = None,
                 default: PhotoSource | None = None) -> None:
        self.placeholder = PlaceholderPhotos()
        self.overrides = dict(overrides or {})
        self.default: PhotoSource = default or self.placeholder
        self._files: dict[str, FilePhoto] = {}

    def photo(self, person: Person) -> Photo | None:
        source = self.overrides.get(person.id_number)
        if source is None:
            spec = (person.photo or "placeholder").strip()
            if spec == "placeholder":
                source = self.default
            else:
                source = self._files.setdefault(spec, FilePhoto(spec))
        return source.photo(person)


def _source(spec: str, base: Path, placeholder: PlaceholderPhotos) -> PhotoSource:
    if spec == "placeholder":
        return placeholder
    path = Path(spec).expanduser()
    return FilePhoto(path if path.is_absolute() else base / path)


def load_photo_map(path: str | Path) -> PhotoRegistry:
    """A :class:`PhotoRegistry` from a YAML photo map (relative paths are relative to the file)."""
    path = Path(path)
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    registry = PhotoRegistry()
    base = path.resolve().parent
    if data.get("default"):
        registry.default = _source(str(data["default"]), base, registry.placeholder)
    for id_number, spec in (data.get("identities") or {}).items():
        registry.overrides[str(id_number).upper()] = _source(str(spec), base, registry.placeholder)
    return registry
