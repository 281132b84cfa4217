"""Inline SVG charts for the HTML report, generated as text.

No JavaScript and no external assets: a report must open offline, years later, from a CI artifact.
Tooltips are SVG <title> elements, which every browser shows natively. Label widths are estimated
from the character count (there is no layout engine here), with margins sized from the longest label
so that tick labels, legends and row names cannot run into each other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

FONT = 12
# Average advance of a system sans-serif glyph at FONT px; slightly generous so estimates err wide.
CHAR_W = 0.62 * FONT

REF_COLOR = "#1c5fb4"
PORT_COLOR = "#e8590c"
ENV_COLOR = "#74a9e6"
PASS_COLOR = "#2b8a3e"
FAIL_COLOR = "#c92a2a"
MUTED = "#868e96"
GRID = "#e9ecef"
AXIS = "#495057"

SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def text_width(s: str, size: float = FONT) -> float:
    return len(s) * CHAR_W * size / FONT


def _n(v: float) -> str:
    # Two decimals keep the file small; sub-pixel precision beyond that is invisible.
    return f"{v:.2f}".rstrip("0").rstrip(".")


def finite(v: float | None) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def as_float(v: object) -> float | None:
    """JSON writes non-finite numbers as strings ('nan', 'inf'); turn them back into floats."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def fmt_num(v: float | None, digits: int = 3) -> str:
    if v is None:
        return "–"
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e4:
        # Enough significant digits that 9740 prints as 9740, not 9.74e+03.
        return f"{v:.{max(digits, math.floor(math.log10(abs(v))) + 1)}g}"
    mant, exp = f"{v:.{max(digits - 1, 0)}e}".split("e")
    return f"{mant.rstrip('0').rstrip('.')}e{int(exp)}"


def pow10_label(k: int) -> str:
    if k == 0:
        return "1"
    if k == 1:
        return "10"
    return "10" + str(k).translate(SUPERSCRIPT)


@dataclass(frozen=True)
class LinearScale:
    lo: float
    hi: float
    a: float
    b: float

    def __call__(self, v: float) -> float:
        span = self.hi - self.lo or 1.0
        return self.a + (v - self.lo) / span * (self.b - self.a)

    @staticmethod
    def nice(lo: float, hi: float, a: float, b: float, count: int = 5, integer: bool = False) -> LinearScale:
        if hi <= lo:
            pad = abs(lo) * 0.05 or 1.0
            lo, hi = lo - pad, hi + pad
        step = _nice_step((hi - lo) / count, integer)
        return LinearScale(math.floor(lo / step) * step, math.ceil(hi / step) * step, a, b)

    def ticks(self, count: int = 5, integer: bool = False) -> list[tuple[float, str]]:
        step = _nice_step((self.hi - self.lo) / count, integer)
        decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
        out = []
        v = math.ceil(self.lo / step - 1e-9) * step
        while v <= self.hi + step * 1e-9:
            out.append((v, f"{v:.{decimals}f}"))
            v += step
        return out


def _nice_step(raw: float, integer: bool) -> float:
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return max(1.0, round(step)) if integer else step


@dataclass(frozen=True)
class LogScale:
    """Always whole decades, so every tick is a labelled power of ten a reader can trust at a glance."""

    lo_exp: int
    hi_exp: int
    a: float
    b: float

    @staticmethod
    def covering(values: Sequence[float], a: float, b: float, min_exp: int = -12, pad_to: int = 1) -> LogScale:
        pos = [v for v in values if finite(v) and v > 0]
        if not pos:
            return LogScale(-1, 1, a, b)
        lo = max(math.floor(math.log10(min(pos))), min_exp)
        hi = math.ceil(math.log10(max(pos)))
        if hi - lo < pad_to:
            hi = lo + pad_to
        return LogScale(lo, max(hi, lo + 1), a, b)

    @property
    def lo(self) -> float:
        return 10.0**self.lo_exp

    @property
    def hi(self) -> float:
        return 10.0**self.hi_exp

    def __call__(self, v: float) -> float:
        # Zero and values below the axis sit on its lower edge; the caller marks them as such.
        e = math.log10(v) if v > 0 else self.lo_exp
        e = min(max(e, self.lo_exp), self.hi_exp)
        return self.a + (e - self.lo_exp) / (self.hi_exp - self.lo_exp) * (self.b - self.a)

    def ticks(self, max_ticks: int = 8) -> list[tuple[float, str]]:
        span = self.hi_exp - self.lo_exp
        every = max(1, math.ceil(span / max_ticks))
        return [
            (10.0**k, pow10_label(k)) for k in range(self.lo_exp, self.hi_exp + 1) if (k - self.lo_exp) % every == 0
        ]


@dataclass
class Series:
    label: str
    xs: Sequence[float]
    ys: Sequence[float | None]
    color: str
    dash: str = ""
    width: float = 2.0
    markers: bool = True
    tooltip: str = "{label}, epoch {x:g}: {y}"
    in_legend: bool = True


@dataclass
class Band:
    label: str
    xs: Sequence[float]
    lo: Sequence[float]
    hi: Sequence[float]
    color: str
    opacity: float = 0.22


@dataclass
class Legend:
    kind: str  # "line", "dash", "band", "marker", "dot"
    label: str
    color: str
    opacity: float = 0.35


class Canvas:
    """Accumulates SVG elements; `svg()` wraps them with an accessible title."""

    def __init__(self, width: int, height: int, title: str, css_class: str = "chart") -> None:
        self.width, self.height, self.title, self.css_class = width, height, title, css_class
        self.parts: list[str] = []

    def add(self, s: str) -> None:
        self.parts.append(s)

    def text(
        self,
        x: float,
        y: float,
        s: str,
        anchor: str = "start",
        size: float = FONT,
        color: str = AXIS,
        weight: str = "normal",
        extra: str = "",
    ) -> None:
        self.add(
            f'<text x="{_n(x)}" y="{_n(y)}" font-size="{_n(size)}" fill="{color}" text-anchor="{anchor}"'
            f' font-weight="{weight}"{extra}>{escape(s)}</text>'
        )

    def line(self, x1: float, y1: float, x2: float, y2: float, color: str, width: float = 1, dash: str = "") -> None:
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(
            f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" stroke="{color}"'
            f' stroke-width="{_n(width)}"{d}/>'
        )

    def svg(self) -> str:
        return (
            f'<svg class="{self.css_class}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {self.width} {self.height}"'
            f' width="{self.width}" height="{self.height}" role="img" aria-label="{escape(self.title)}"'
            f' font-family="system-ui, -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif">'
            f"<title>{escape(self.title)}</title>" + "".join(self.parts) + "</svg>"
        )


def legend_rows(items: Sequence[Legend], width: float, x0: float) -> list[list[tuple[Legend, float]]]:
    """Greedy line filling: each item is a 22 px swatch plus its label; wrap when the line is full."""
    rows: list[list[tuple[Legend, float]]] = [[]]
    x = x0
    for it in items:
        w = 26 + text_width(it.label) + 16
        if rows[-1] and x + w > width:
            rows.append([])
            x = x0
        rows[-1].append((it, x))
        x += w
    return rows


def draw_legend(c: Canvas, items: Sequence[Legend], x0: float, y0: float) -> float:
    """Draws the legend from y0 down; returns the height it took."""
    rows = legend_rows(items, c.width - 8, x0)
    for r, row in enumerate(rows):
        y = y0 + 8 + r * 20
        for it, x in row:
            if it.kind == "band":
                c.add(
                    f'<rect x="{_n(x)}" y="{_n(y - 6)}" width="22" height="12" fill="{it.color}" fill-opacity="{it.opacity}"'
                    f' stroke="{it.color}" stroke-opacity="0.6"/>'
                )
            elif it.kind == "marker":
                _cross(c, x + 11, y, FAIL_COLOR)
            elif it.kind == "dot":
                c.add(f'<circle cx="{_n(x + 11)}" cy="{_n(y)}" r="5" fill="{it.color}"/>')
            else:
                c.line(x, y, x + 22, y, it.color, 2.5, "5 3" if it.kind == "dash" else "")
            c.text(x + 28, y + 4, it.label)
    return len(rows) * 20 + 6


def _cross(c: Canvas, x: float, y: float, color: str, title: str = "") -> None:
    t = f"<title>{escape(title)}</title>" if title else ""
    c.add(
        f'<g stroke="{color}" stroke-width="2.2">{t}<line x1="{_n(x - 4)}" y1="{_n(y - 4)}" x2="{_n(x + 4)}"'
        f' y2="{_n(y + 4)}"/><line x1="{_n(x - 4)}" y1="{_n(y + 4)}" x2="{_n(x + 4)}" y2="{_n(y - 4)}"/></g>'
    )


def line_chart(
    title: str,
    series: Sequence[Series],
    bands: Sequence[Band] = (),
    x_label: str = "epoch",
    y_label: str = "",
    log_y: bool = False,
    width: int = 560,
    height: int = 340,
    extra_legend: Sequence[Legend] = (),
    fail_above: Sequence[float | None] = (),
) -> str:
    """Series over a shared x axis (epochs). Non-finite points break the line and are drawn as red
    crosses on the top edge, so a NaN loss is visible instead of silently missing. `fail_above` (one
    bound per x of the first series) shades the region above it, where a value fails."""
    c = Canvas(width, height, title)
    legend: list[Legend] = [Legend("band", b.label, b.color, min(1.0, b.opacity * 1.5)) for b in bands]
    legend += [Legend("dash" if s.dash else "line", s.label, s.color) for s in series if s.in_legend]
    legend += list(extra_legend)
    if fail_above:
        legend.append(Legend("band", "fails", FAIL_COLOR, 0.12))
    has_nonfinite = any(not finite(as_float(y)) and y is not None for s in series for y in s.ys)
    if has_nonfinite:
        legend.append(Legend("marker", "NaN / inf", FAIL_COLOR))
    top = 6 + draw_legend(c, legend, 60, 4)
    ys_all = [as_float(y) for s in series for y in s.ys] + [v for b in bands for v in (*b.lo, *b.hi)]
    ys = [v for v in ys_all if finite(v)]
    xs = [float(x) for s in series for x in s.xs] + [float(x) for b in bands for x in b.xs]
    bottom = height - 44
    if log_y:
        ysc: LinearScale | LogScale = LogScale.covering(ys, bottom, top)
        yticks = ysc.ticks()
    else:
        lin = LinearScale.nice(min(ys, default=0.0), max(ys, default=1.0), bottom, top)
        ysc, yticks = lin, lin.ticks()
    left = 14 + FONT + 6 + max((text_width(lbl) for _, lbl in yticks), default=20) + 8
    right = width - 16
    xsc = LinearScale.nice(min(xs, default=0.0), max(xs, default=1.0), left, right, count=8, integer=True)
    if xs:
        # Epochs start at 1; a 0 or a rounded-up end would leave an empty margin inside the plot.
        xsc = LinearScale(min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1, left, right)
    # Grid and axes.
    for v, lbl in yticks:
        y = ysc(v)
        c.line(left, y, right, y, GRID)
        c.text(left - 6, y + 4, lbl, anchor="end")
    for v, lbl in xsc.ticks(count=min(10, max(2, int((right - left) / 50))), integer=True):
        x = xsc(v)
        c.line(x, bottom, x, bottom + 5, AXIS)
        c.text(x, bottom + 18, lbl, anchor="middle")
    c.line(left, bottom, right, bottom, AXIS)
    c.line(left, top, left, bottom, AXIS)
    c.text((left + right) / 2, height - 8, x_label, anchor="middle")
    cy = (top + bottom) / 2
    c.text(14, cy, y_label, anchor="middle", extra=f' transform="rotate(-90 14 {_n(cy)})"')
    if fail_above and series:
        pts = [
            (xsc(float(x)), ysc(v)) for x, v in zip(series[0].xs, map(as_float, fail_above), strict=False) if finite(v)
        ]
        if pts:
            edge = [(pts[-1][0], top), (pts[0][0], top)]
            c.add(
                f'<polygon class="fail-region" points="{" ".join(f"{_n(x)},{_n(y)}" for x, y in pts + edge)}"'
                f' fill="{FAIL_COLOR}" fill-opacity="0.07" stroke="none"><title>fails</title></polygon>'
            )
    for b in bands:
        pts_hi = [(xsc(float(x)), ysc(float(h))) for x, h in zip(b.xs, b.hi, strict=False) if finite(h)]
        pts_lo = [(xsc(float(x)), ysc(float(lo))) for x, lo in zip(b.xs, b.lo, strict=False) if finite(lo)]
        if pts_hi and pts_lo:
            pts = pts_hi + pts_lo[::-1]
            c.add(
                f'<polygon class="band" points="{" ".join(f"{_n(x)},{_n(y)}" for x, y in pts)}" fill="{b.color}"'
                f' fill-opacity="{b.opacity}" stroke="none"><title>{escape(b.label)}</title></polygon>'
            )
    for s in series:
        segments: list[list[tuple[float, float]]] = [[]]
        for x, y in zip(s.xs, s.ys, strict=False):
            v = as_float(y)
            if not finite(v):
                if segments[-1]:
                    segments.append([])
                if y is not None:
                    _cross(c, xsc(float(x)), top + 6, FAIL_COLOR, f"{s.label}, {x_label} {x:g}: {y}")
                continue
            segments[-1].append((xsc(float(x)), ysc(v)))
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        for seg in segments:
            if len(seg) > 1:
                c.add(
                    f'<polyline class="series" data-series="{escape(s.label)}" fill="none" stroke="{s.color}"'
                    f' stroke-width="{_n(s.width)}" stroke-linejoin="round"{dash}'
                    f' points="{" ".join(f"{_n(x)},{_n(y)}" for x, y in seg)}"/>'
                )
        if s.markers:
            for x, y in zip(s.xs, s.ys, strict=False):
                v = as_float(y)
                if finite(v):
                    tip = s.tooltip.format(label=s.label, x=float(x), y=fmt_num(v, 6))
                    c.add(
                        f'<circle cx="{_n(xsc(float(x)))}" cy="{_n(ysc(v))}" r="2.6" fill="{s.color}">'
                        f"<title>{escape(tip)}</title></circle>"
                    )
    return c.svg()


@dataclass
class RatioRow:
    """One row of a ratio chart: the worst error over its allowed error (<= 1 passes).

    ratio None means the row has no numeric error (a set or a declared value that matched)."""

    label: str
    ratio: float | None
    passed: bool
    note: str = ""
    points: Sequence[tuple[str, float | None, bool]] = ()
    emphasis: bool = False


def ratio_chart(
    title: str,
    rows: Sequence[RatioRow],
    x_label: str = "worst error / allowed error (log scale; right of 1 fails)",
    bars: bool = False,
    width: int = 1120,
) -> str:
    """Rows against a log axis with the tolerance at 1. Exact matches sit at the left edge labelled
    'exact'; non-finite errors at the right edge labelled '∞'."""
    row_h = 28
    label_w = max((text_width(r.label) for r in rows), default=40) + 18
    note_w = max((text_width(r.note, FONT - 1) for r in rows), default=0) + 18
    mark = "band" if bars else "dot"
    legend = [
        Legend(mark, "within tolerance", PASS_COLOR, 0.8),
        Legend(mark, "outside tolerance", FAIL_COLOR, 0.8),
        Legend("dash", "tolerance (ratio 1)", AXIS),
    ]
    c = Canvas(width, 0, title)
    top = 6 + draw_legend(c, legend, label_w, 4) + 8
    height = int(top + row_h * len(rows) + 44)
    c.height = height
    left, right = label_w, width - note_w - 14
    values = [r.ratio for r in rows] + [p[1] for r in rows for p in r.points]
    vals = [v for v in values if finite(v) and v > 0]
    sc = LogScale.covering([*vals, 0.1, 10.0], left, right, min_exp=-9)
    bottom = top + row_h * len(rows)
    fail_x = sc(1.0)
    c.add(
        f'<rect x="{_n(fail_x)}" y="{_n(top)}" width="{_n(right - fail_x)}" height="{_n(bottom - top)}"'
        f' fill="{FAIL_COLOR}" fill-opacity="0.06"/>'
    )
    # As many decade labels as fit side by side (a label such as "10⁻¹⁰" is about 40 px wide).
    for v, lbl in sc.ticks(max(2, int((right - left) / 44))):
        x = sc(v)
        c.line(x, top, x, bottom, GRID)
        c.text(x, bottom + 17, lbl, anchor="middle")
    c.line(left, bottom, right, bottom, AXIS)
    c.line(fail_x, top - 4, fail_x, bottom, AXIS, 1.5, "5 3")
    c.text((left + right) / 2, height - 8, x_label, anchor="middle")
    for i, r in enumerate(rows):
        y = top + row_h * i + row_h / 2
        if i % 2:
            # Zebra stripes across the whole row guide the eye from a name to its marker and note.
            c.add(
                f'<rect x="0" y="{_n(y - row_h / 2)}" width="{width}" height="{row_h}" fill="#000" fill-opacity="0.03"/>'
            )
        c.text(left - 10, y + 4, r.label, anchor="end", weight="bold" if r.emphasis else "normal")
        color = PASS_COLOR if r.passed else FAIL_COLOR
        for name, v, ok in r.points:
            if finite(v):
                c.add(
                    f'<circle cx="{_n(sc(v if v > 0 else sc.lo))}" cy="{_n(y)}" r="3" fill="{PASS_COLOR if ok else FAIL_COLOR}"'
                    f' fill-opacity="0.35"><title>{escape(name)}: {escape(fmt_num(v))}</title></circle>'
                )
        v = r.ratio
        if v is None or (finite(v) and v <= sc.lo):
            x, tag = left, "exact" if (v is None or v == 0) else f"≤ {pow10_label(sc.lo_exp)}"
        elif not finite(v):
            x, tag = right, "∞"
        else:
            x, tag = sc(v), fmt_num(v)
        if bars:
            c.add(
                f'<rect class="bar" x="{_n(left)}" y="{_n(y - 8)}" width="{_n(max(x - left, 1.5))}" height="16"'
                f' fill="{color}" fill-opacity="0.8"><title>{escape(r.label)}: {escape(tag)}</title></rect>'
            )
        else:
            c.line(left, y, x, y, color, 1.2)
            c.add(
                f'<circle class="dot" cx="{_n(x)}" cy="{_n(y)}" r="6" fill="{color}" stroke="white" stroke-width="1.5">'
                f"<title>{escape(r.label)}: {escape(tag)}</title></circle>"
            )
        # The value goes right of the marker unless that would cross into the note column.
        tx = x + 10
        anchor = "start"
        if tx + text_width(tag) > right:
            tx, anchor = x - 10, "end"
        inside = anchor == "end" and bars
        halo = "" if inside else ' paint-order="stroke" stroke="white" stroke-width="3" stroke-linejoin="round"'
        c.text(tx, y + 4, tag, anchor=anchor, size=FONT - 1, color="white" if inside else color, extra=halo)
        if r.note:
            c.text(right + 14, y + 4, r.note, size=FONT - 1, color=MUTED)
    return c.svg()
