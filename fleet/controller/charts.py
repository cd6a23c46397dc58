"""History charts as inline SVG, drawn on the server (no JavaScript chart library, nothing from a CDN).

Times are shown in China Standard Time (UTC+8, no daylight saving). Every bar and point carries a <title> so the
browser shows its value on hover.
"""
from __future__ import annotations

import datetime as dt
import math
from html import escape
from typing import Sequence

CST = dt.timezone(dt.timedelta(hours=8), "CST")
W, H = 560, 190
ML, MR, MT, MB = 44, 12, 22, 26


def fmt_time(ms: int | None, with_date: bool = True) -> str:
    if not ms:
        return "—"
    t = dt.datetime.fromtimestamp(ms / 1000, CST)
    return t.strftime("%m-%d %H:%M:%S" if with_date else "%H:%M:%S")


def fmt_ago(ms: int | None, now_ms: int) -> str:
    if not ms:
        return "从未"
    s = max(0, (now_ms - ms) // 1000)
    if s < 60:
        return f"{s} 秒前"
    if s < 3600:
        return f"{s // 60} 分钟前"
    if s < 86400:
        return f"{s // 3600} 小时前"
    return f"{s // 86400} 天前"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m = s // 60
    if d:
        return f"{d} 天 {h} 小时"
    if h:
        return f"{h} 小时 {m} 分"
    if m:
        return f"{m} 分钟"
    return f"{s} 秒"


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * exp:
            return m * exp
    return 10 * exp


def _frame(since: int, until: int, ymax: float, unit: str, yticks: Sequence[tuple[float, str]] | None = None,
           label: str = "") -> list[str]:
    pw, ph = W - ML - MR, H - MT - MB
    out = [f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(label)}" '
           f'xmlns="http://www.w3.org/2000/svg">']
    ticks = yticks or [(ymax * i / 4, _num(ymax * i / 4)) for i in range(5)]
    for value, text_ in ticks:
        y = MT + ph - (value / ymax) * ph if ymax else MT + ph
        out.append(f'<line x1="{ML}" y1="{y:.1f}" x2="{W - MR}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{ML - 6}" y="{y + 4:.1f}" class="ylab">{escape(text_)}</text>')
    # x ticks every 3 hours (or 6 for long windows), at whole CST hours
    span_h = (until - since) / 3_600_000
    step_h = 3 if span_h <= 30 else 12
    start = dt.datetime.fromtimestamp(since / 1000, CST).replace(minute=0, second=0, microsecond=0)
    t = start + dt.timedelta(hours=1)
    while t.timestamp() * 1000 <= until:
        if t.hour % step_h == 0:
            x = ML + (t.timestamp() * 1000 - since) / (until - since) * pw
            out.append(f'<line x1="{x:.1f}" y1="{MT + ph}" x2="{x:.1f}" y2="{MT + ph + 4}" class="axis"/>')
            out.append(f'<text x="{x:.1f}" y="{H - 8}" class="xlab">{t.strftime("%H:00")}</text>')
        t += dt.timedelta(hours=1)
    out.append(f'<line x1="{ML}" y1="{MT + ph}" x2="{W - MR}" y2="{MT + ph}" class="axis"/>')
    if unit:
        out.append(f'<text x="{ML - 6}" y="{MT - 12}" class="unit">{escape(unit)}</text>')
    return out


def _num(v: float) -> str:
    return f"{v:.0f}" if v >= 10 or v == int(v) else f"{v:.1f}"


def _empty(out: list[str]) -> str:
    out.append(f'<text x="{W / 2}" y="{H / 2}" class="empty">暂无数据</text></svg>')
    return "".join(out)


def bar_chart(buckets: Sequence[tuple[int, float]], since: int, until: int, bucket_ms: int, unit: str = "",
              css: str = "bar", label: str = "", value_label: str = "") -> str:
    """Counts per bucket (integer axis)."""
    ymax = max(4.0, _nice_max(max((v for _, v in buckets), default=0)))
    if ymax % 4:
        ymax = 4 * math.ceil(ymax / 4)
    out = _frame(since, until, ymax, unit, label=label)
    if not buckets or all(v == 0 for _, v in buckets):
        return _empty(out)
    pw, ph = W - ML - MR, H - MT - MB
    bw = max(1.0, bucket_ms / (until - since) * pw - 2)
    for start, v in buckets:
        if v <= 0:
            continue
        x = ML + (start - since) / (until - since) * pw + 1
        h = v / ymax * ph
        tip = f"{fmt_time(start, False)[:5]}–{fmt_time(start + bucket_ms, False)[:5]}: {_num(v)} {value_label}"
        out.append(f'<rect x="{x:.1f}" y="{MT + ph - h:.1f}" width="{bw:.1f}" height="{h:.1f}" rx="2" '
                   f'class="{css}"><title>{escape(tip)}</title></rect>')
    out.append("</svg>")
    return "".join(out)


PAPER_LEVELS = [(0, "缺纸"), (1, "将尽"), (2, "正常")]


def step_chart(points: Sequence[tuple[int, float]], since: int, until: int, label: str = "") -> str:
    """Paper supply over time: 2 ok, 1 near-end, 0 out, as a filled step line with coloured bands."""
    out = _frame(since, until, 2.0, "", yticks=[(v, t) for v, t in PAPER_LEVELS], label=label)
    if not points:
        return _empty(out)
    pw, ph = W - ML - MR, H - MT - MB

    def xy(ts: int, v: float) -> tuple[float, float]:
        return ML + (max(ts, since) - since) / (until - since) * pw, MT + ph - v / 2.0 * ph

    path = []
    last_v = None
    for ts, v in points:
        x, y = xy(ts, v)
        if last_v is None:
            path.append(f"M{x:.1f},{y:.1f}")
        else:
            path.append(f"H{x:.1f}V{y:.1f}")
        last_v = v
    x_end, _ = xy(until, 0)
    path.append(f"H{x_end:.1f}")
    line = "".join(path)
    x0, _ = xy(points[0][0], 0)
    out.append(f'<path d="{line}V{MT + ph}H{x0:.1f}Z" class="area"/>')
    out.append(f'<path d="{line}" class="stepline"/>')
    for ts, v in points:
        x, y = xy(ts, v)
        name = dict(PAPER_LEVELS).get(int(v), "")
        cls = {0: "dot-bad", 1: "dot-warn"}.get(int(v), "dot-ok")
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" class="{cls}"><title>{fmt_time(ts)} {name}</title>'
                   f'</circle>')
    out.append("</svg>")
    return "".join(out)


def line_chart(points: Sequence[tuple[int, float]], since: int, until: int, unit: str = "", label: str = "",
               css: str = "line") -> str:
    ymax = _nice_max(max((v for _, v in points), default=0) * 1.1)
    out = _frame(since, until, ymax, unit, label=label)
    if not points:
        return _empty(out)
    pw, ph = W - ML - MR, H - MT - MB
    coords = [(ML + (ts - since) / (until - since) * pw, MT + ph - v / ymax * ph) for ts, v in points]
    d = "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    out.append(f'<path d="{d}" class="{css}"/>')
    for (ts, v), (x, y) in zip(points[-1:], coords[-1:]):
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" class="dot-ok"><title>{fmt_time(ts)} {_num(v)} {unit}'
                   f'</title></circle>')
    out.append("</svg>")
    return "".join(out)


def day_bar_chart(days: Sequence[dict], keys: Sequence[tuple[str, str, str]], label: str = "", unit: str = "人次"
                  ) -> str:
    """Stacked bars per CST day (the reports page): ``days`` rows with ``day`` (YYYY-MM-DD) and counts;
    ``keys`` = (field, css class, name) bottom to top. Every bar segment has a <title>."""
    totals = [sum(int(d.get(k) or 0) for k, _c, _n in keys) for d in days]
    ymax = max(4.0, _nice_max(max(totals, default=0)))
    if ymax % 4:
        ymax = 4 * math.ceil(ymax / 4)
    pw, ph = W - ML - MR, H - MT - MB
    out = [f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(label)}" '
           f'xmlns="http://www.w3.org/2000/svg">']
    for i in range(5):
        value = ymax * i / 4
        y = MT + ph - (value / ymax) * ph
        out.append(f'<line x1="{ML}" y1="{y:.1f}" x2="{W - MR}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{ML - 6}" y="{y + 4:.1f}" class="ylab">{escape(_num(value))}</text>')
    out.append(f'<line x1="{ML}" y1="{MT + ph}" x2="{W - MR}" y2="{MT + ph}" class="axis"/>')
    out.append(f'<text x="{ML - 6}" y="{MT - 12}" class="unit">{escape(unit)}</text>')
    if not days or not any(totals):
        return _empty(out)
    n = len(days)
    slot = pw / n
    bw = max(1.0, slot - (2 if slot > 4 else 0))
    every = max(1, math.ceil(n / 8))
    for i, d in enumerate(days):
        x = ML + i * slot + (slot - bw) / 2
        base = MT + ph
        for field_, css, name in keys:
            v = int(d.get(field_) or 0)
            if v <= 0:
                continue
            h = v / ymax * ph
            base -= h
            out.append(f'<rect x="{x:.1f}" y="{base:.1f}" width="{bw:.1f}" height="{h:.1f}" class="{css}">'
                       f'<title>{escape(d["day"])} {escape(name)}: {v}</title></rect>')
        if i % every == 0:
            out.append(f'<text x="{x + bw / 2:.1f}" y="{H - 8}" class="xlab">{escape(d["day"][5:])}</text>')
    out.append("</svg>")
    return "".join(out)


def funnel_chart(rows: Sequence[dict], names: dict[str, str], label: str = "") -> str:
    """The journey funnel as horizontal bars: reached per step, the drop-off beside it."""
    top = max((r["reached"] for r in rows), default=0)
    row_h = 26
    height = MT + row_h * len(rows) + 8
    left = 90
    width = W - left - 110
    out = [f'<svg class="chart" viewBox="0 0 {W} {height}" role="img" aria-label="{escape(label)}" '
           f'xmlns="http://www.w3.org/2000/svg">']
    if not top:
        out.append(f'<text x="{W / 2}" y="{height / 2}" class="empty">暂无数据</text></svg>')
        return "".join(out)
    for i, r in enumerate(rows):
        y = MT + i * row_h - 12
        w = r["reached"] / top * width
        name = names.get(r["step"], r["step"])
        out.append(f'<text x="{left - 8}" y="{y + 15:.1f}" class="ylab">{escape(name)}</text>')
        out.append(f'<rect x="{left}" y="{y:.1f}" width="{max(w, 1):.1f}" height="{row_h - 8}" rx="3" class="bar">'
                   f'<title>{escape(name)}: {r["reached"]}</title></rect>')
        drop = f' −{r["dropped"]} ({r["drop_pct"]}%)' if r.get("dropped") else ""
        out.append(f'<text x="{left + max(w, 1) + 6:.1f}" y="{y + 14:.1f}" class="flab">{r["reached"]}'
                   f'<tspan class="drop">{escape(drop)}</tspan></text>')
    out.append("</svg>")
    return "".join(out)


def stars_chart(ratings: dict, label: str = "") -> str:
    """Ratings per star (★5 at the top), each bar with its count and share; ★1–2 in the alarm colour."""
    stars = ratings.get("stars") or {}
    rated = int(ratings.get("rated") or 0)
    row_h, left = 26, 60
    width = W - left - 120
    height = MT + row_h * 5 + 8
    out = [f'<svg class="chart" viewBox="0 0 {W} {height}" role="img" aria-label="{escape(label)}" '
           f'xmlns="http://www.w3.org/2000/svg">']
    if not rated:
        out.append(f'<text x="{W / 2}" y="{height / 2}" class="empty">暂无评价</text></svg>')
        return "".join(out)
    top = max(int(v or 0) for v in stars.values()) or 1
    for i, star in enumerate("54321"):
        n = int(stars.get(star) or 0)
        y = MT + i * row_h - 12
        w = n / top * width
        css = "bar-bad" if star in "12" else "bar"
        out.append(f'<text x="{left - 8}" y="{y + 15:.1f}" class="ylab">{"★" * int(star)}</text>')
        out.append(f'<rect x="{left}" y="{y:.1f}" width="{max(w, 1):.1f}" height="{row_h - 8}" rx="3" class="{css}" '
                   f'data-star="{star}"><title>★{star}: {n}</title></rect>')
        out.append(f'<text x="{left + max(w, 1) + 6:.1f}" y="{y + 14:.1f}" class="flab">{n} '
                   f'<tspan class="pct">({round(100 * n / rated, 1)}%)</tspan></text>')
    out.append("</svg>")
    return "".join(out)


def report_charts(data: dict, screen_names: dict[str, str], flows: int = 6) -> dict[str, object]:
    """The reports page's rating and per-service funnel charts: ``stars`` and ``flows`` (service → SVG) for the
    ``flows`` most used services."""
    return {"stars": stars_chart(data["ratings"], "评价星级分布"),
            "flows": {s["service"]: funnel_chart(s["flow"], screen_names, f"{s['service']} 办理漏斗")
                      for s in data["services"][:flows] if len(s["flow"]) > 1}}
