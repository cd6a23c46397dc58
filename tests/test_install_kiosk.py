"""The production install path (docs/install-kiosk.md): ``pip install .[kiosk]`` brings what a kiosk runs, and no
server stack; ``.[platform]`` and ``.[controller]`` what the servers run; ``.[dev]`` all of it.

The cheap checks read pyproject.toml and every import of the kiosk's own code (kiosk/, screens/, drivers/,
device_profiles/, the fleet agent) and check each is covered by the base dependencies plus the ``kiosk`` extra
(with what those pull in). The slow one installs the way a technician does: a fresh venv, ``govkiosk[kiosk]`` and
face_recognition from a wheelhouse (scripts/kiosk-wheelhouse.sh), then ``kiosk-profile validate`` and a headless
start of the kiosk with simulated devices.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

import pytest
import yaml

from device_profiles import cli

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
#: what a kiosk runs
KIOSK_CODE = ["kiosk", "screens", "drivers", "device_profiles", "fleet/agent", "fleet/mqtt.py", "fleet/protocol.py",
              "fleet/signing.py", "fleet/profile_signing.py"]
#: imported by the kiosk's code but deliberately outside the kiosk extra, and why
OUTSIDE_THE_EXTRA = {
    "face_recognition": "installed after the extra with --no-deps (its dlib requirement compiles for > 15 min)",
    "fpdf": "only the simulators' sample PDFs (licence printer, document camera): development and demo",
}
SERVER_STACK = {"fastapi", "uvicorn", "sqlalchemy", "psycopg", "orjson"}


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _extra(name: str) -> list[str]:
    return PYPROJECT["project"]["optional-dependencies"][name]


def _closure(names: list[str]) -> set[str]:
    """The distributions ``names`` bring, following the installed distributions' own requirements (no extras)."""
    seen: set[str] = set()
    todo = [_name(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = requires(name) or []
        except PackageNotFoundError:
            continue
        todo += [_name(r) for r in reqs if "extra ==" not in r]
    return seen


@lru_cache(maxsize=1)
def _distributions() -> dict[str, list[str]]:
    return packages_distributions()


_IMPORT = re.compile(r"^\s*(?:from\s+([A-Za-z_][\w]*)[\w.]*\s+import\b|import\s+([A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*))",
                     re.M)


def _third_party_imports(paths: list[str]) -> dict[str, set[str]]:
    """Top-level module → files importing it (module level or inside functions; relative imports are ours)."""
    local = {"kiosk", "screens", "drivers", "device_profiles", "fleet", "service_platform"}
    found: dict[str, set[str]] = {}
    for entry in paths:
        path = ROOT / entry
        for f in ([path] if path.is_file() else path.rglob("*.py")):
            for frm, imp in _IMPORT.findall(f.read_text("utf-8")):
                for n in [frm] if frm else [x.strip() for x in imp.split(",")]:
                    root = n.split(".")[0]
                    if root not in sys.stdlib_module_names and root not in local and root != "__future__":
                        found.setdefault(root, set()).add(str(f.relative_to(ROOT)))
    return found


def test_the_kiosk_extra_covers_every_import_of_the_kiosk_and_brings_no_server_stack() -> None:
    dists = _distributions()
    kiosk = _closure(PYPROJECT["project"]["dependencies"] + _extra("kiosk"))
    aliases = {"dlib": "dlib-bin"}   # dlib-bin installs the module `dlib`
    missing = {}
    for module, files in sorted(_third_party_imports(KIOSK_CODE).items()):
        if module in OUTSIDE_THE_EXTRA:
            continue
        provided = {d.lower().replace("_", "-") for d in dists.get(module, [])} | {aliases.get(module, "")}
        if not provided & kiosk:
            missing[module] = sorted(files)[:3]
    assert not missing, f"imported by kiosk code but not brought by the kiosk extra: {missing}"
    assert not SERVER_STACK & kiosk, SERVER_STACK & kiosk
    assert {"opencv-python-headless", "dlib-bin", "face-recognition-models", "pycups", "pyscard", "kivy",
            "pyserial", "python-escpos", "paho-mqtt"} <= {_name(r) for r in _extra("kiosk")}


def test_server_extras_cover_the_servers_and_dev_brings_everything() -> None:
    base = PYPROJECT["project"]["dependencies"]
    for extra, code in (("platform", ["service_platform"]), ("controller", ["fleet/controller", "fleet/mqtt.py",
                                                                             "fleet/protocol.py", "fleet/signing.py"])):
        have = _closure(base + _extra(extra))
        dists = _distributions()
        lacking = [m for m in _third_party_imports(code)
                   if not {d.lower().replace("_", "-") for d in dists.get(m, [])} & have]
        assert not lacking, (extra, lacking)
    assert "govkiosk[kiosk,platform,controller]" in _extra("dev")
    # the dev venv gets the face stack in the same versions setup.sh installs it with
    setup = (ROOT / "scripts" / "setup.sh").read_text("utf-8")
    for pin in ("dlib-bin==20.0.1.post1", "face_recognition_models==0.3.0", "face_recognition==1.3.0"):
        assert pin in setup
        assert pin.split("==")[0] == "face_recognition" or pin in _extra("kiosk")


def test_the_kiosk_user_has_no_login_shell_and_the_groups_its_devices_need() -> None:
    lines = [line.split() for line in (ROOT / "deploy/sysusers.d/govkiosk.conf").read_text("utf-8").splitlines()
             if line and not line.startswith("#")]
    user = next(line for line in lines if line[0] == "u")
    assert user[1] == "kiosk" and user[-1] == "/usr/sbin/nologin"
    groups = {line[2] for line in lines if line[0] == "m" and line[1] == "kiosk"}
    assert {"dialout", "lp", "video"} <= groups
    unit = (ROOT / "deploy/systemd/kiosk.service").read_text("utf-8")
    assert set(re.search(r"^SupplementaryGroups=(.*)$", unit, re.M).group(1).split()) <= groups
    guide = (ROOT / "docs/install-kiosk.md").read_text("utf-8")
    for step in ("pip install --no-index", "govkiosk[kiosk]", "--no-deps face_recognition", "systemd-sysusers",
                 "kiosk-profile udev-rules", "kiosk-profile discover", "kiosk-profile validate",
                 "deploy/systemd", "docs/kiosk-session.md"):
        assert step in guide, step
    assert "docs/install-kiosk.md" in (ROOT / "README.md").read_text("utf-8")


def test_the_committed_udev_rules_are_what_the_example_profile_generates(capsys: pytest.CaptureFixture[str],
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)   # the rules name the profile by the path they were generated from
    assert cli.main(["udev-rules", "device_profiles/example-kiosk.yaml"]) == 0
    out, err = capsys.readouterr()
    assert out == (ROOT / "deploy/udev/99-govkiosk.rules").read_text("utf-8")
    assert err == ""   # every device's settings already name its stable /dev/kiosk-* link
    rules = [line for line in out.splitlines() if line and not line.startswith("#")]
    profile = yaml.safe_load((ROOT / "device_profiles/example-kiosk.yaml").read_text("utf-8"))
    with_usb = [kind for kind, dev in profile["devices"].items() if dev.get("usb")]
    assert len(rules) == len(with_usb)
    for line in rules:
        assert re.search(r'ATTRS\{idVendor\}=="[0-9a-f]{4}", ATTRS\{idProduct\}=="[0-9a-f]{4}"', line), line
        assert re.search(r'SYMLINK\+="kiosk-[a-z-]+", GROUP="(dialout|lp|video)", MODE="0660"$', line), line


def test_udev_rules_warn_when_settings_do_not_use_the_stable_name(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    profile = yaml.safe_load((ROOT / "device_profiles/example-kiosk.yaml").read_text("utf-8"))
    profile["devices"]["idcard"]["settings"]["port"] = "/dev/ttyUSB0"
    profile["devices"]["receipt_printer"] = {"driver": "escpos", "usb": {"vendor": "04b8", "product": "0202"},
                                             "settings": {"connection": "usb", "vendor_id": 0x04b8,
                                                          "product_id": 0x0202}}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(profile, allow_unicode=True), "utf-8")
    assert cli.main(["udev-rules", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "devices.idcard.settings.port is '/dev/ttyUSB0'; with this rule use '/dev/kiosk-idcard'" in err
    assert ('SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device", ATTR{idVendor}=="04b8", ATTR{idProduct}=="0202", '
            'SYMLINK+="kiosk-printer", GROUP="lp"') in out


WHEELHOUSE = ROOT / "var" / "wheelhouse-kiosk"


@pytest.mark.slow
def test_a_fresh_venv_with_only_the_kiosk_extra_validates_and_starts_headless(tmp_path: Path) -> None:
    """As docs/install-kiosk.md: wheelhouse → fresh venv → govkiosk[kiosk] + face_recognition → validate → start."""
    stamp = WHEELHOUSE / ".pyproject"
    if not stamp.is_file() or stamp.read_text("utf-8") != (ROOT / "pyproject.toml").read_text("utf-8"):
        shutil.rmtree(WHEELHOUSE, ignore_errors=True)
        subprocess.run(["bash", "scripts/kiosk-wheelhouse.sh", str(WHEELHOUSE)], cwd=ROOT, check=True, timeout=1800,
                       env={**os.environ, "PYTHON": sys.executable})
        stamp.write_text((ROOT / "pyproject.toml").read_text("utf-8"), "utf-8")
    # the dependencies' wheels are reused, the project's own wheel never: it is built from the code as it is now,
    # out of a clean copy (the tree's build/ may hold modules since removed, which a wheel built in place would ship)
    for old in WHEELHOUSE.glob("govkiosk-*.whl"):
        old.unlink()
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy2(ROOT / "pyproject.toml", source)
    for package in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]:
        shutil.copytree(ROOT / package.rstrip("*"), source / package.rstrip("*"),
                        ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(WHEELHOUSE), str(source)], check=True, timeout=600)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-index",
           "--find-links", str(WHEELHOUSE)]
    subprocess.run([*pip, "govkiosk[kiosk]"], check=True, timeout=900, cwd=tmp_path)
    subprocess.run([*pip, "--no-deps", "face_recognition==1.3.0"], check=True, timeout=300, cwd=tmp_path)
    python = str(venv / "bin" / "python")
    probe = subprocess.run([python, "-c", "import importlib.util as u, face_recognition, cv2, kivy, smartcard, cups, "
                            "escpos, serial, paho.mqtt; print([m for m in ('fastapi', 'sqlalchemy', 'uvicorn') "
                            "if u.find_spec(m)])"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert probe.returncode == 0 and probe.stdout.strip() == "[]", probe.stdout + probe.stderr

    validate = subprocess.run([str(venv / "bin" / "kiosk-profile"), "validate",
                               str(ROOT / "device_profiles/example-kiosk.yaml")], capture_output=True, text=True,
                              cwd=tmp_path, timeout=120)
    assert validate.returncode == 0, validate.stderr
    assert "8 devices" in validate.stdout

    profile = yaml.safe_load((ROOT / "device_profiles/simulated.yaml").read_text("utf-8"))
    profile["kiosk"]["data_dir"] = str(tmp_path / "data")
    profile["kiosk"].pop("nightly_restart_at", None)   # run at 03:30, the kiosk must not restart while checked
    keygen = subprocess.run([str(venv / "bin" / "kiosk"), "keygen", "--out", str(tmp_path / "platform.key")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)   # step 4 of the guide
    assert keygen.returncode == 0, keygen.stderr
    profile["platform"]["key_file"] = str(tmp_path / "platform.key")
    profile["devices"] = {k: v for k, v in profile["devices"].items() if k in ("idcard", "receipt_printer")}
    path = tmp_path / "kiosk.yaml"
    path.write_text(yaml.safe_dump(profile, allow_unicode=True), "utf-8")
    from drivers.sim.process import ManagedProcess

    # no display (the kiosk starts its own Xvfb), nothing of the repository on the path: only the fresh venv
    env = {"DISPLAY": "", "WAYLAND_DISPLAY": "", "PYTHONPATH": "", "KIVY_HOME": str(tmp_path / "kivy"),
           "ESCPOS_CAPABILITIES_PICKLE_DIR": str(tmp_path / "escpos")}
    kiosk = ManagedProcess([str(venv / "bin" / "kiosk"), "run", "--profile", str(path)], "fresh kiosk",
                           start_timeout=120, env=env, cwd=str(tmp_path))
    try:
        assert kiosk.proc.poll() is None                 # the attract screen is up (first line) and it runs
        assert kiosk.endpoints["pid"] == kiosk.pid and kiosk.endpoints["startup_s"] > 0
    finally:
        kiosk.stop()
