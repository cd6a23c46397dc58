"""Real face photos that ship inside installed packages, found without importing those packages.

Used by the tests, the benchmarks and the demo's simulated camera; nothing is downloaded at run time. Sources and
licences: tests/data/README.md. Install (a separate step, see there)::

    pip install --no-deps scikit-image==0.26.0 matplotlib==3.11.2

``--no-deps`` because only the image files are used: the packages are never imported, and their dependencies
(scipy, …) would cost ~60 MB for nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path


@dataclass(frozen=True)
class SamplePhoto:
    name: str
    distribution: str
    path: str
    person: str
    licence: str


SAMPLE_PHOTOS: dict[str, SamplePhoto] = {
    "astronaut": SamplePhoto("astronaut", "scikit-image", "skimage/data/astronaut.png",
                             "Eileen Collins (NASA portrait, 512×512)",
                             "public domain (as stated in skimage.data.astronaut's docstring)"),
    "grace_hopper": SamplePhoto("grace_hopper", "matplotlib", "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
                                "Grace Hopper (US Navy portrait, 512×600)",
                                "US federal government work, public domain in the US (no licence stated in the package)"),
}


class SampleMissing(FileNotFoundError):
    pass


def sample_photo_path(name: str) -> Path:
    """Where the installed package keeps photo ``name``; :class:`SampleMissing` saying what to install if not."""
    sample = SAMPLE_PHOTOS[name]
    try:
        path = Path(str(distribution(sample.distribution).locate_file(sample.path)))
    except PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise SampleMissing(f"sample photo {name!r} needs the {sample.distribution} package: "
                            f"pip install --no-deps scikit-image==0.26.0 matplotlib==3.11.2")
    return path


def load_sample_photo(name: str):  # -> np.ndarray (BGR)
    import cv2

    image = cv2.imread(str(sample_photo_path(name)), cv2.IMREAD_COLOR)
    if image is None:
        raise SampleMissing(f"sample photo {name!r} is unreadable")
    return image
