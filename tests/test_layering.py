"""The layering shared/README.md requires: kiosk/ never imports Kivy; drivers/ imports neither kiosk/ nor screens/;
the service platform shares nothing with the kiosk but its HTTP API. device_profiles/ (profiles and the technicians'
tool) sits below the kiosk: it never imports kiosk/. The kiosk core (kiosk/core.py) is on top of the use-cases: it
builds them and hands each a ``kiosk.context.UseCaseContext``, so no other kiosk module imports it."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

RULES = {
    "kiosk": {"kivy", "screens"},
    "drivers": {"kiosk", "screens", "kivy", "fleet", "service_platform"},
    "service_platform": {"kiosk", "screens", "drivers", "fleet", "kivy"},
    "device_profiles": {"kiosk", "screens", "kivy", "fleet", "service_platform"},
}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports by absolute name (``from a import b`` counts ``a`` and ``a.b``), including
    imports under ``if TYPE_CHECKING:``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize("package", sorted(RULES))
def test_package_imports_respect_the_layers(package: str) -> None:
    files = list((ROOT / package).rglob("*.py"))
    assert files
    offenders = {str(f.relative_to(ROOT)): sorted(imported_roots(f) & RULES[package]) for f in files
                 if imported_roots(f) & RULES[package]}
    assert not offenders, offenders



def test_no_kiosk_module_imports_the_core() -> None:
    files = [f for f in (ROOT / "kiosk").rglob("*.py") if f != ROOT / "kiosk" / "core.py"]
    assert ROOT / "kiosk" / "usecases" / "apply.py" in files and ROOT / "kiosk" / "maintenance.py" in files
    offenders = sorted(str(f.relative_to(ROOT)) for f in files
                       if any(m == "kiosk.core" or m.startswith("kiosk.core.") for m in imported_modules(f)))
    assert not offenders, offenders
