"""The usage chart: clips and spend per UTC day and the top members, drawn as a PNG.

The data (``UsageSeries``) is built from the same rows as the usage report's text, so the
picture and the words agree. Drawing uses matplotlib's object API (``Figure`` on an Agg
canvas), never pyplot's global state, and runs in a worker thread: a render takes a tenth
of a second or more, which the event loop must not wait for. matplotlib is imported only
when a chart is drawn, so starting the bot does not pay for it.
"""

from __future__ import annotations

import asyncio
import functools
import io
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from services.models import MemberTotal
from services.storage.usage import DAY_SECONDS, DayMemberCount

if TYPE_CHECKING:
    from matplotlib.axes import Axes

TOP_MEMBERS = 10  # more bars than this turn into a list nobody reads; the text has them all
WIDTH_PX, HEIGHT_PX, DPI = 1200, 700, 100  # Discord shows it whole, and it stays small
LABEL_MAX = 22  # characters of a member's name: longer names squeeze the bars out
FONT = "DejaVu Sans"  # shipped with matplotlib, so every host draws the same glyphs

# An opaque white card with near-black text reads on Discord's dark and light themes alike;
# blue and orange stay distinct for the common colour-vision deficiencies.
BACKGROUND, INK, MUTED, GRID = "#ffffff", "#1f2328", "#57606a", "#d0d7de"
CLIPS_COLOUR, SPEND_COLOUR = "#2f6fd6", "#d9731a"

# matplotlib's font and text caches are shared by every figure and not guarded: two
# renders at once (two moderators asking together) take turns instead.
_RENDER_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class DayUsage:
    """Counted clips and their cost on one UTC day (``day_start``: its midnight, Unix time)."""

    day_start: float
    clips: int
    cost_usd: float


@dataclass(frozen=True, slots=True)
class UsageSeries:
    """What the chart shows: every UTC day of the period (zero when quiet), and the top members.

    The first day is counted from ``since`` (the period is rolling), the last up to ``until``.
    ``top`` is empty when the report is about one member (``user_id``).
    """

    since: float
    until: float
    user_id: int | None
    days: tuple[DayUsage, ...]
    top: tuple[MemberTotal, ...]

    @property
    def total_clips(self) -> int:
        return sum(day.clips for day in self.days)

    @property
    def total_cost_usd(self) -> float:
        return sum(day.cost_usd for day in self.days)

    @property
    def busiest(self) -> DayUsage | None:
        """The day with the most clips (the earliest of equals); None when there were none."""
        best = max(self.days, key=lambda d: d.clips, default=None)
        return best if best is not None and best.clips > 0 else None


def member_totals(counts: Iterable[DayMemberCount]) -> list[MemberTotal]:
    """Clips and spend per member over all days, most clips first (then by id, stable)."""
    clips: dict[int, int] = {}
    spend: dict[int, float] = {}
    for row in counts:
        clips[row.user_id] = clips.get(row.user_id, 0) + row.clips
        spend[row.user_id] = spend.get(row.user_id, 0.0) + row.cost_usd
    order = sorted(clips, key=lambda user_id: (-clips[user_id], user_id))
    return [MemberTotal(user_id, clips[user_id], spend[user_id]) for user_id in order]


def usage_series(
    counts: Sequence[DayMemberCount],
    *,
    since: float,
    until: float,
    user_id: int | None = None,
    top: int = TOP_MEMBERS,
) -> UsageSeries:
    """Every UTC day from ``since``'s to ``until``'s, quiet days as zero, and the top members."""
    clips: dict[int, int] = {}
    spend: dict[int, float] = {}
    for row in counts:
        clips[row.day] = clips.get(row.day, 0) + row.clips
        spend[row.day] = spend.get(row.day, 0.0) + row.cost_usd
    first, last = int(since // DAY_SECONDS), int(until // DAY_SECONDS)
    days = tuple(
        DayUsage(float(day * DAY_SECONDS), clips.get(day, 0), spend.get(day, 0.0))
        for day in range(first, max(first, last) + 1)
    )
    leaders = () if user_id is not None else tuple(member_totals(counts)[:top])
    return UsageSeries(since, until, user_id, days, leaders)


# --- drawing --------------------------------------------------------------------------------


async def render_usage_chart(series: UsageSeries, names: Mapping[int, str], title: str) -> bytes:
    """The chart as PNG bytes, drawn in a worker thread so the event loop keeps answering."""
    return await asyncio.to_thread(render_usage_png, series, names, title)


def render_usage_png(series: UsageSeries, names: Mapping[int, str], title: str) -> bytes:
    """The chart as PNG bytes, WIDTH_PX by HEIGHT_PX, on an opaque background (blocking)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with _RENDER_LOCK:
        figure = Figure(
            figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI),
            dpi=DPI,
            facecolor=BACKGROUND,
            layout="constrained",
        )
        FigureCanvasAgg(figure)
        with_members = series.user_id is None
        grid = figure.add_gridspec(2, 2 if with_members else 1, width_ratios=_ratios(with_members))
        clips_axes = figure.add_subplot(grid[0, 0])
        spend_axes = figure.add_subplot(grid[1, 0], sharex=clips_axes)
        _draw_days(clips_axes, spend_axes, series.days)
        if with_members:
            _draw_members(figure.add_subplot(grid[:, 1]), series.top, names)
        figure.suptitle(
            drawable(title, limit=90), color=INK, fontsize=16, fontfamily=FONT, parse_math=False
        )
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", facecolor=BACKGROUND, metadata={"Software": None})
    return buffer.getvalue()


def _ratios(with_members: bool) -> list[float]:
    return [2.0, 1.0] if with_members else [1.0]


def _style(axes: Axes, ylabel: str) -> None:
    axes.set_facecolor(BACKGROUND)
    axes.set_ylabel(ylabel, color=INK, fontsize=11, fontfamily=FONT)
    axes.tick_params(colors=INK, labelsize=9)
    axes.grid(axis="y", color=GRID, linewidth=0.8)
    axes.set_axisbelow(True)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        axes.spines[side].set_color(MUTED)


def _draw_days(clips_axes: Axes, spend_axes: Axes, days: Sequence[DayUsage]) -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    positions = list(range(len(days)))
    clips = [day.clips for day in days]
    spend = [day.cost_usd for day in days]
    clip_bars = clips_axes.bar(positions, clips, color=CLIPS_COLOUR, width=0.8)
    spend_bars = spend_axes.bar(positions, spend, color=SPEND_COLOUR, width=0.8)
    _style(clips_axes, "Clips per day")
    _style(spend_axes, "Spend per day (USD)")
    clips_axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    spend_axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"${value:,.2f}"))
    # A quiet period still gets a readable scale rather than matplotlib's ±0.05 around zero.
    clips_axes.set_ylim(0, max(1, max(clips, default=0)) * 1.15)
    spend_axes.set_ylim(0, max(1.0, max(spend, default=0.0)) * 1.15)
    if len(days) <= 31:  # a number on each bar; past a month they would overlap
        clips_axes.bar_label(clip_bars, [str(c) if c else "" for c in clips], color=INK, fontsize=8)
        spend_axes.bar_label(
            spend_bars, [f"${s:,.2f}" if s else "" for s in spend], color=INK, fontsize=7
        )
    step = max(1, math.ceil(len(days) / 12))
    ticks = positions[::step]
    spend_axes.set_xticks(ticks, [_day_label(days[i].day_start, step == 1) for i in ticks])
    clips_axes.tick_params(labelbottom=False)
    spend_axes.set_xlim(-0.6, len(days) - 0.4)
    first, last = days[0].day_start, days[-1].day_start
    span = day_words(first) if first == last else f"{day_words(first)} to {day_words(last)}"
    spend_axes.set_xlabel(f"UTC day, {span}", color=INK, fontsize=11, fontfamily=FONT)


def _draw_members(axes: Axes, top: Sequence[MemberTotal], names: Mapping[int, str]) -> None:
    axes.set_title("Top members by clips", color=INK, fontsize=12, fontfamily=FONT)
    _style(axes, "")
    axes.grid(axis="y", visible=False)
    axes.grid(axis="x", color=GRID, linewidth=0.8)
    if not top:
        axes.set_axis_off()
        axes.text(
            0.5, 0.5, "No clips in this period", ha="center", va="center",
            color=MUTED, fontsize=12, transform=axes.transAxes,
        )  # fmt: skip
        return
    positions = list(range(len(top)))
    bars = axes.barh(positions, [t.clips for t in top], color=CLIPS_COLOUR, height=0.7)
    labels = [
        drawable(names.get(t.user_id, ""), limit=LABEL_MAX) or member_fallback(t.user_id)
        for t in top
    ]
    axes.set_yticks(positions, labels)
    for label in axes.get_yticklabels():
        label.set_parse_math(False)  # a "$" in a name is a name, not a formula
    axes.invert_yaxis()  # the biggest on top, as read
    axes.bar_label(bars, [f" {t.clips} · ${t.cost_usd:,.2f}" for t in top], color=INK, fontsize=9)
    axes.set_xlim(0, max(t.clips for t in top) * 1.45)  # room for the labels after the bars
    axes.set_xlabel("Clips (and spend)", color=INK, fontsize=11, fontfamily=FONT)
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))


# The two labels below are drawn on the chart and said again in its alt text (the cog's
# wording imports them), so the picture and what a screen reader reads name things alike.


def member_fallback(user_id: int) -> str:
    """A member the bot has not seen, named without a ping (the chart is an image)."""
    return f"member …{str(user_id)[-4:]}"


def day_words(moment: float) -> str:
    """A UTC day: `Thu 3 Dec 2026`."""
    day = _utc(moment)
    return f"{day:%a} {day.day} {day:%b %Y}"  # not %-d: that is glibc's, not Python's


def _utc(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, UTC)


def _day_label(day_start: float, every_day: bool) -> str:
    """`Mon\\n3 Dec` when each day has its label, else `3 Dec` (weekdays then mislead)."""
    day = _utc(day_start)
    short = f"{day.day} {day:%b}"  # not %-d: that is glibc's, not Python's
    return f"{day:%a}\n{short}" if every_day else short


def drawable(text: str, *, limit: int) -> str:
    """``text`` on one line, cut to ``limit``, without characters the chart's font lacks.

    Names are free text: emoji and rare scripts would draw as empty boxes (and make
    matplotlib warn), and control characters as nothing useful.
    """
    known = _font_characters()
    flat = " ".join(text.split())
    kept = "".join(c for c in flat if c.isprintable() and ord(c) in known)
    kept = " ".join(kept.split())
    return kept if len(kept) <= limit else kept[: limit - 1].rstrip() + "…"


@functools.cache
def _font_characters() -> frozenset[int]:
    from matplotlib import font_manager, ft2font

    path = font_manager.findfont(font_manager.FontProperties(family=FONT), fallback_to_default=True)
    charmap: dict[int, Any] = ft2font.FT2Font(path).get_charmap()
    return frozenset(charmap)
