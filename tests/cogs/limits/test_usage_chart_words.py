"""The usage chart's alt text names days and unseen members as the picture draws them."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from matplotlib.figure import Figure

from cogs.limits.wording import usage_chart_alt
from services import usage_chart
from services.models import MemberTotal
from services.usage_chart import DayUsage, UsageSeries

D = 86400
START = datetime(2024, 1, 1, tzinfo=UTC).timestamp()  # a Monday


def test_the_alt_text_says_the_days_and_member_labels_the_chart_draws() -> None:
    series = UsageSeries(
        since=START,
        until=START + D,
        user_id=None,
        days=(DayUsage(START, 1, 0.36), DayUsage(START + D, 0, 0.0)),
        top=(MemberTotal(123456789, 1, 0.36),),
    )
    clips, spend, members = Figure().subplots(3)
    usage_chart._draw_days(clips, spend, series.days)
    usage_chart._draw_members(members, series.top, {})

    alt = usage_chart_alt(SimpleNamespace(series=series, user_id=None), {})  # type: ignore[arg-type]

    assert spend.get_xlabel() == "UTC day, Mon 1 Jan 2024 to Tue 2 Jan 2024"
    assert "Mon 1 Jan 2024 to Tue 2 Jan 2024" in alt
    (label,) = [tick.get_text() for tick in members.get_yticklabels()]
    assert label == "member …6789" and f"{label} 1 clip" in alt
