"""What members and moderators read about limits, money and refusals, from the services' data."""

from __future__ import annotations

import pytest

from cogs import words
from services.admission import (
    Admitted,
    DuplicateRequest,
    LimitReached,
    MemberBlocked,
)
from services.allowed_channels import ChannelNotAllowed
from services.errors import RefusedError, SegmindInsufficientCredits
from services.gates import AccountPaused
from services.limits import EffectiveLimit
from services.models import Job, JobState, VideoRequest
from services.periods import LimitSpec
from services.spend_caps import BudgetExhausted, SpendCeilingReached

H, D = 3600, 86400
RESETS = 1_715_817_600.0  # 2024-05-16T00:00:00Z


def admitted(remaining: int, spec: LimitSpec, cost: float) -> Admitted:
    job = Job(1, 2, 3, 4, VideoRequest.create("a fox", seed=1), JobState.QUEUED, 0.0)
    return Admitted(job=job, limit=EffectiveLimit(spec, "server"), used=1, remaining=remaining,
                    cost_usd=cost)  # fmt: skip


def test_the_allowance_says_what_a_clip_spends_and_what_is_left() -> None:
    assert words.allowance(admitted(2, LimitSpec(3, D), 0.36)) == "$0.36 · 2 of 3 clips left today"
    assert words.allowance(admitted(0, LimitSpec(1, 6 * H), 0.0)) == "0 of 1 clip left per 6 hours"
    assert words.clips_left(4, LimitSpec(5, 7 * D)) == "4 of 5 clips left this week"


def test_limits_are_named_for_the_member_and_for_moderators() -> None:
    role = EffectiveLimit(LimitSpec(3, D), "role", 42)
    assert f"{words.limit_origin(role)}: {words.limit_words(role.spec)}" == (
        "your role limit <@&42>: 3 clips per day"
    )
    assert words.limit_words(LimitSpec(1, 6 * H)) == "1 clip per 6 hours"
    assert words.limit_words(LimitSpec(0, D)) == "blocked"
    assert words.limit_source_label(role) == "role <@&42>"
    operator = EffectiveLimit(LimitSpec(5, D), "operator")
    assert words.limit_source_label(operator) == "the bot's built-in default"


def test_counts_periods_money_and_timestamps() -> None:
    assert [words.plural(n, "clip") for n in (0, 1, 2)] == ["0 clips", "1 clip", "2 clips"]
    assert [words.describe_period(s) for s in (D, 6 * H, 1800, 90)] == [
        "day", "6 hours", "30 minutes", "90 seconds"
    ]  # fmt: skip
    assert words.format_usd(1234.5) == "$1,234.50"
    assert words.discord_timestamp(1700000000.2) == "<t:1700000001:R>"  # rounded up


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            MemberBlocked(EffectiveLimit(LimitSpec(0, D), "user")),
            "You are blocked from making videos here (your personal limit).",
        ),
        (
            LimitReached(EffectiveLimit(LimitSpec(2, D), "role", 7), used=2, next_free_at=RESETS),
            "You have reached your role limit <@&7>: 2 clips per day. "
            "Your next slot frees <t:1715817600:R>.",
        ),
        (
            BudgetExhausted(kind="daily", resets_at=RESETS, cap=1),
            "This server's daily limit of 1 clip is reached. It resets <t:1715817600:R>.",
        ),
        (
            BudgetExhausted(
                kind="monthly",
                resets_at=RESETS,
                budget_usd=0.72,
                spent_usd=0.72,
                clip_cost_usd=0.36,
            ),
            "This server's monthly video budget of $0.72 is used up. It resets <t:1715817600:R>.",
        ),
        (
            BudgetExhausted(
                kind="monthly",
                resets_at=RESETS,
                budget_usd=0.50,
                spent_usd=0.36,
                clip_cost_usd=0.36,
            ),
            "This server's monthly video budget ($0.50) has $0.14 left, not enough for another "
            "clip ($0.36). It resets <t:1715817600:R>.",
        ),
        (
            AccountPaused(SegmindInsufficientCredits(), retry_at=RESETS + 0.7),
            f"{SegmindInsufficientCredits.user_message} You can try again <t:1715817600:R>.",
        ),
        (
            SpendCeilingReached(
                ceiling_usd=10.0, spent_usd=9.9, clip_cost_usd=0.36, resets_at=RESETS
            ),
            "The bot has spent all it may today, across every server it is in (a limit set by "
            "whoever hosts it). It resets <t:1715817600:R>; nothing was spent on this request.",
        ),
        (RefusedError("No time."), "No time."),
    ],
)
def test_each_refusal_says_which_limit_and_when_to_try_again(
    error: RefusedError, expected: str
) -> None:
    assert words.refusal(error) == expected


def test_the_channel_refusal_names_a_few_channels_then_how_many_more() -> None:
    assert words.channels_where((1,)) == "<#1>"
    assert words.channels_where((1, 2)) == "<#1> or <#2>"
    assert words.channels_where((1, 2, 3)) == "<#1>, <#2> or <#3>"
    seven, six = tuple(range(1, 8)), tuple(range(1, 7))
    assert words.channels_where(seven) == "<#1>, <#2>, <#3>, <#4>, <#5> and 2 more channels"
    assert words.channels_where(six) == "<#1>, <#2>, <#3>, <#4>, <#5> and 1 more channel"
    assert words.refusal(ChannelNotAllowed((1, 2))) == (
        "Videos can only be made in <#1> or <#2> on this server "
        "(threads in them count too). Nothing was spent."
    )


def test_a_refusal_never_exceeds_discords_2000_characters() -> None:
    assert len(words.refusal(RefusedError("x" * 3000, retry_at=RESETS))) == 2000


def test_moderators_hear_which_cap_stopped_requests_and_how_to_change_it() -> None:
    daily = words.budget_alert(BudgetExhausted(kind="daily", resets_at=RESETS, cap=1))
    assert "the daily cap of 1 clip (UTC day) is reached" in daily
    assert "<t:1715817600:R>" in daily and "/videolimit budget" in daily
    monthly = words.budget_alert(
        BudgetExhausted(
            kind="monthly", resets_at=RESETS, budget_usd=0.72, spent_usd=0.72, clip_cost_usd=0.36
        )
    )
    assert "$0.72 of the monthly budget of $0.72 is spent" in monthly
    assert "the next clip costs $0.36" in monthly


def earlier_job(*, message_id: int | None, private: bool = False) -> Job:
    return Job(
        41, 2, 3, 4, VideoRequest.create("a fox", seed=1), JobState.QUEUED, 0.0,
        private=private, message_id=message_id,
    )  # fmt: skip


def test_a_double_click_is_pointed_at_the_first_requests_progress() -> None:
    linked = words.refusal(DuplicateRequest(earlier_job(message_id=99)))
    assert linked.startswith("You just asked for this same video, so it is made once")
    assert "nothing more is spent" in linked
    assert "[Follow its progress here](https://discord.com/channels/2/3/99)" in linked
    # Not posted yet (the clicks came at once), or private (an ephemeral message has no link).
    waiting = words.refusal(DuplicateRequest(earlier_job(message_id=None)))
    assert waiting.endswith("Its progress message is on its way.")
    private = words.refusal(DuplicateRequest(earlier_job(message_id=99, private=True)))
    assert "discord.com" not in private and "private message above" in private


def test_moderators_hear_the_operators_ceiling_and_who_can_change_it() -> None:
    alert = words.ceiling_alert(
        SpendCeilingReached(ceiling_usd=25.0, spent_usd=25.0, clip_cost_usd=0.36, resets_at=RESETS)
    )
    assert "daily spending limit of $25.00 (UTC day) is reached" in alert
    assert "<t:1715817600:R>" in alert and "MAX_DAILY_SPEND_USD" in alert


def test_a_ceiling_of_zero_promises_no_reset() -> None:
    paused = SpendCeilingReached(ceiling_usd=0.0, spent_usd=0.0, clip_cost_usd=0.36, resets_at=1.0)
    assert "<t:" not in words.refusal(paused) and "paused" in words.refusal(paused)
    assert "<t:" not in words.ceiling_alert(
        paused
    ) and "MAX_DAILY_SPEND_USD" in words.ceiling_alert(paused)
