"""What keeps the kiosk's data folder from leaving things behind or growing without bound (README "Retention").

* :func:`private_temp_root` — session temp files (PDFs to print, …) live in ``<data_dir>/tmp`` (mode 0700, owned
  by the kiosk's user), never in the shared system temp folder; whatever a crash left there is swept at start.
* :func:`use_private_escpos_cache` — python-escpos pickles its capability database into
  ``ESCPOS_CAPABILITIES_PICKLE_DIR`` and loads that pickle at import: the kiosk points it at
  ``<data_dir>/cache/escpos`` (0700) *before* anything imports escpos, so no pickle from a folder others can write
  (the system temp folder) is ever unpickled.
"""
from __future__ import annotations

import logging
import os
import shutil
import stat
import sys
from pathlib import Path

log = logging.getLogger(__name__)

TEMP_DIR = "tmp"
ESCPOS_CACHE_DIR = ("cache", "escpos")


class UnsafeFolder(RuntimeError):
    """A private folder exists but is not ours or is open to others and could not be fixed."""


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) as 0700; an existing one must belong to us; its mode is narrowed to 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise UnsafeFolder(f"{path} is not a plain folder")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise UnsafeFolder(f"{path} belongs to uid {st.st_uid}, not to the kiosk's user")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def sweep(folder: Path) -> int:
    """Delete everything inside ``folder`` (what an earlier run left: it crashed before its sessions ended)."""
    removed = 0
    for child in folder.iterdir():
        try:
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
            removed += 1
        except OSError as exc:
            log.warning("could not remove leftover %s: %s", child, exc)
    if removed:
        log.info("swept %d leftover temp item(s) from %s", removed, folder)
    return removed


def private_temp_root(data_dir: str | os.PathLike[str]) -> Path:
    """``<data_dir>/tmp``: 0700, emptied now (call once at start, before any session)."""
    root = private_dir(Path(data_dir) / TEMP_DIR)
    sweep(root)
    return root


def use_private_escpos_cache(data_dir: str | os.PathLike[str]) -> Path:
    """Point python-escpos's capability cache at ``<data_dir>/cache/escpos`` (0700). Must run before escpos is
    imported (its module reads the variable once, at import); if it was imported already with another folder, that
    is logged (the folder it uses then is the driver's per-user fallback, never the shared temp folder)."""
    folder = private_dir(Path(data_dir).joinpath(*ESCPOS_CACHE_DIR)).resolve()
    previous = os.environ.get("ESCPOS_CAPABILITIES_PICKLE_DIR")
    os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"] = str(folder)
    if "escpos.capabilities" in sys.modules and previous and Path(previous).resolve() != folder:
        log.info("python-escpos already imported with its cache in %s (this process keeps it)", previous)
    return folder


def use_private_escpos_cache_for(profile_path: str | os.PathLike[str]) -> Path | None:
    """:func:`use_private_escpos_cache` for the ``kiosk.data_dir`` of a profile file, read *before* the profile is
    loaded (loading resolves the drivers, which imports escpos). None when the file cannot be read (the loader
    reports that properly)."""
    import yaml

    try:
        data = yaml.safe_load(Path(profile_path).read_text("utf-8"))
        data_dir = (data.get("kiosk") or {}).get("data_dir") or "var/kiosk"
        return use_private_escpos_cache(str(data_dir))
    except (OSError, ValueError, AttributeError, yaml.YAMLError, UnsafeFolder) as exc:
        log.warning("escpos cache not set from %s: %s", profile_path, exc)
        return None
