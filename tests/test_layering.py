"""The layering shared/README.md requires: kiosk/ never imports Kivy; drivers/ imports neither kiosk/ nor screens/;
the service platform shares nothing with the kiosk but its HTTP API."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

RULES = {
    "kiosk": {"kivy", "screens"},
    "drivers": {"kiosk", "screens", "kivy", "fleet", "service_platform"},
    "service_platform": {"kiosk", "screens", "drivers", "fleet", "kivy"},
}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(RULES))
def test_package_imports_respect_the_layers(package: str) -> None:
    files = list((ROOT / package).rglob("*.py"))
    assert files
    offenders = {str(f.relative_to(ROOT)): sorted(imported_roots(f) & RULES[package]) for f in files
                 if imported_roots(f) & RULES[package]}
    assert not offenders, offenders
