"""PDF generation figures of the service platform: proofs (proof_pdf.render_proof) and e-certificates
(ecert_pdf.render_for_seal), each drawn with fpdf2 and the CJK font, then sealed PAdES with pyHanko (seal.py).

For every document the time is split into

* font load  — ``pdf_fonts.add_cjk_font`` / ``FPDF.add_font`` (parsing the CJK font, or copying the per-process
  parsed small font);
* layout     — everything else the renderer does before ``output`` (text, table, QR);
* output     — ``FPDF.output`` (font subsetting and serialisation);
* signing    — ``SealKeeper.sign`` (pyHanko, visible seal).

The first document of a process (imports, font parse, seal issue) is reported on its own ("cold"); the figures over
``--runs`` documents of each type are medians / p95 of the warm ones. ``--profile`` prints a cProfile of the warm runs
(top functions by cumulative time). Not part of the test run.

Run: ``.venv/bin/python bench/pdf_render.py [--runs 20] [--profile] [--no-sign]``; ``PLATFORM_CJK_SUBSET=0`` in the
environment measures the old font path (the full font parsed and subsetted per document, service_platform/pdf_fonts.py).
The small font is made on first use (a few seconds, once per machine, in ``$PLATFORM_FONT_CACHE`` or
``~/.cache/govkiosk/fonts``): that shows in the "cold" line of a first run.
"""
from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import pstats
import statistics
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NOW = dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.timezone.utc)
PEOPLE = ("340302195803172018", "35010219490822102X", "230202197511053015", "520302199002144027",
          "530102198306301518", "810000199205082049", "340302194501013033")

PHASES = ("font", "layout", "output", "sign", "total")


class PhaseClock:
    """Wraps FPDF.add_font, pdf_fonts.add_cjk_font (if there) and FPDF.output so that the time spent in each is added
    to the current document's phases (a call inside another timed call is not counted twice)."""

    def __init__(self) -> None:
        from fpdf import FPDF

        self.current: dict[str, float] = defaultdict(float)
        self._depth = threading.local()
        targets: list[tuple[object, str, str]] = [(FPDF, "add_font", "font"), (FPDF, "output", "output")]
        try:
            from service_platform import pdf_fonts
            targets.append((pdf_fonts, "add_cjk_font", "font"))
        except ImportError:  # before pdf_fonts.py existed
            pass
        for owner, name, phase in targets:
            setattr(owner, name, self._timed(getattr(owner, name), phase))

    def _timed(self, fn: Callable, phase: str) -> Callable:
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            depth = getattr(self._depth, "n", 0)
            self._depth.n = depth + 1
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._depth.n = depth
                if depth == 0:
                    self.current[phase] += time.perf_counter() - t0
        return wrapper


def proof_contents() -> list[tuple[str, object]]:
    """(label, ProofContent) of every proof type for the demo registry's citizens, built from a seeded SQLite."""
    from service_platform.db import create_tables, make_engine, make_sessionmaker
    from service_platform.errors import ApiError
    from service_platform.proofs import PROOF_TYPES, availability, build, resolve_period
    from service_platform.seed.loader import seed_if_empty

    engine = make_engine("sqlite://")
    create_tables(engine)
    out: list[tuple[str, object]] = []
    with make_sessionmaker(engine)() as db:
        seed_if_empty(db, demo=True)
        for person in PEOPLE:
            for proof in PROOF_TYPES.values():
                try:
                    avail = availability(db, person, proof, NOW)
                    start, end = resolve_period(avail, None, None)
                    out.append((proof.code, build(db, person, proof, start, end, NOW)))
                except ApiError:
                    continue
    engine.dispose()
    return out


def cert_documents() -> list[object]:
    from service_platform.ecert_pdf import CertDocument

    docs = []
    for i, (name, kind, en) in enumerate((("张建华", "居民身份证", "Resident identity card"),
                                          ("李秀英", "结婚证", "Marriage certificate"),
                                          ("王德明", "机动车驾驶证", "Driving licence"),
                                          ("陈思琪", "不动产权证书", "Real-estate title"))):
        docs.append(CertDocument(cert_id=f"EC-{i:04d}", type_name=kind, type_name_en=en, holder_name=name,
                                 number=f"皖(2024)蚌埠市不动产权第{1000 + i:07d}号", issuer="蚌埠市公安局龙子湖分局",
                                 issued_on=dt.date(2024, 3, 1 + i), valid_until=dt.date(2034, 3, 1 + i),
                                 status_text="有效", trust_level="ABCD"[i % 4],
                                 fields=(("住址", "安徽省蚌埠市龙子湖区东海大道4188号"), ("民族", "汉"))))
    return docs


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="warm documents of each type (default 20)")
    parser.add_argument("--profile", action="store_true", help="cProfile the warm runs (top 25 by cumulative)")
    parser.add_argument("--no-sign", action="store_true", help="draw only")
    args = parser.parse_args()

    t_import = time.perf_counter()
    from service_platform.ecert_pdf import find_cjk_font, render_for_seal
    from service_platform.proof_pdf import render_proof
    from service_platform.seal import SealKeeper
    from service_platform.sealed_documents import _seal_png
    import fpdf  # noqa: F401
    import pyhanko.sign.signers  # noqa: F401
    t_import = time.perf_counter() - t_import

    font_path, index = find_cjk_font()
    print(f"font: {font_path}#{index}; imports {t_import * 1000:.0f} ms")
    clock = PhaseClock()
    keeper = SealKeeper(None, auto_init=True)
    proofs = proof_contents()
    certs = cert_documents()
    code = "ABCD-EFGH-JKMN-PQR0"
    verify = "https://platform.example/verify/d/ABCD-EFGH-JKMN-PQR0"
    base = "https://platform.example/verify"

    def one(kind: str, item: object) -> tuple[dict[str, float], int]:
        clock.current = defaultdict(float)
        t0 = time.perf_counter()
        if kind == "ecert":
            drawn = render_for_seal(item, code, verify)  # type: ignore[arg-type]
            issuer = item.issuer  # type: ignore[attr-defined]
        else:
            drawn = render_proof(item, code, verify, base)  # type: ignore[arg-type]
            issuer = item.proof.issuer  # type: ignore[attr-defined]
        drawn_at = time.perf_counter()
        size = len(drawn.data)
        if not args.no_sign:
            sealed = keeper.sign(drawn.data, issuer, box=drawn.seal_box, page=-1, seal_png=_seal_png(issuer))
            size = len(sealed.data)
        end = time.perf_counter()
        phases = dict(clock.current)
        phases["layout"] = (drawn_at - t0) - phases.get("font", 0.0) - phases.get("output", 0.0)
        phases["sign"] = end - drawn_at
        phases["total"] = end - t0
        return phases, size

    # cold: the first document of the process, and each department's first seal (issue + seal image)
    cold, _ = one("proof", proofs[0][1])
    print("cold first proof: " + "  ".join(f"{p} {cold.get(p, 0) * 1000:.0f}" for p in PHASES) + "  (ms)")
    for _, content in proofs:  # every department's seal issued and its image drawn before timing
        issuer = content.proof.issuer  # type: ignore[attr-defined]
        keeper._signer(issuer)  # noqa: SLF001 - bench warms the cache
        _seal_png(issuer)
    for doc in certs:
        keeper._signer(doc.issuer)  # type: ignore[attr-defined]  # noqa: SLF001
        _seal_png(doc.issuer)  # type: ignore[attr-defined]

    groups: dict[str, list[object]] = defaultdict(list)
    for label, content in proofs:
        groups[label].append(content)
    groups["ecert"] = certs
    figures: dict[str, dict[str, list[float]]] = {}
    sizes: dict[str, list[int]] = defaultdict(list)
    profiler = cProfile.Profile() if args.profile else None
    for label, items in groups.items():
        kind = "ecert" if label == "ecert" else "proof"
        per_phase: dict[str, list[float]] = defaultdict(list)
        for i in range(args.runs):
            if profiler:
                profiler.enable()
            phases, size = one(kind, items[i % len(items)])
            if profiler:
                profiler.disable()
            sizes[label].append(size)
            for p in PHASES:
                per_phase[p].append(phases.get(p, 0.0))
        figures[label] = per_phase

    print(f"\nwarm figures over {args.runs} documents per type, ms (median / p95)")
    print(f"{'type':26}" + "".join(f"{p:>16}" for p in PHASES) + f"{'KB':>8}")
    everything: dict[str, list[float]] = defaultdict(list)
    for label, per_phase in figures.items():
        cells = []
        for p in PHASES:
            everything[p] += per_phase[p]
            cells.append(f"{statistics.median(per_phase[p]) * 1000:7.0f} /{pct(per_phase[p], 0.95) * 1000:6.0f}")
        print(f"{label:26}" + "".join(f"{c:>16}" for c in cells) + f"{statistics.median(sizes[label]) / 1024:8.0f}")
    print(f"{'all':26}" + "".join(f"{statistics.median(everything[p]) * 1000:7.0f} /"
                                   f"{pct(everything[p], 0.95) * 1000:6.0f}".rjust(16) for p in PHASES))
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
