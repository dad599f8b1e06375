"""Words both features use: money, counts, periods, limits, refusals, in Discord's markup.

Services return data (a limit, when the next slot frees, what is left); this module
turns it into what members and moderators read, so the wording lives on this side of
the boundary and is tested without a connection.
"""

from __future__ import annotations

import math

from services.admission import (
    Admitted,
    DuplicateRequest,
    LimitReached,
    MemberBlocked,
)
from services.allowed_channels import ChannelNotAllowed
from services.errors import RefusedError
from services.limits import EffectiveLimit
from services.periods import UNIT_SECONDS, LimitSpec
from services.spend_caps import BudgetExhausted, SpendCeilingReached

CONTENT_MAX = 2000  # Discord's limit on a message's text
# To anyone in a server that is not on the operator's ALLOWED_GUILDS.
NOT_SERVED = "This bot is not available in this server."

_UNIT_NAMES = {"m": "minute", "h": "hour", "d": "day", "w": "week"}
# A refusal names this many allowed channels, then says how many more: a list of 50
# mentions would bury the sentence.
CHANNELS_NAMED = 5


def discord_timestamp(unix: float, style: str = "R") -> str:
    """A Discord timestamp (`<t:1700000000:R>` shows as "in 3 hours"), rounded up."""
    return f"<t:{math.ceil(unix)}:{style}>"


def message_url(guild_id: int, channel_id: int, message_id: int) -> str:
    """A link that opens a message in Discord (for those who can see its channel)."""
    return f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"


def format_usd(amount: float) -> str:
    return f"${amount:,.2f}"


def plural(count: int, noun: str) -> str:
    """A count with its noun in the right number: `1 clip`, `0 clips`, `2 clips`."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def describe_period(seconds: int) -> str:
    """Words for a period: `day`, `6 hours`, `30 minutes`."""
    for unit in ("w", "d", "h", "m"):
        size = UNIT_SECONDS[unit]
        if seconds % size == 0:
            n = seconds // size
            return _UNIT_NAMES[unit] if n == 1 else f"{n} {_UNIT_NAMES[unit]}s"
    return f"{seconds} seconds"


def limit_words(spec: LimitSpec) -> str:
    """`3 clips per day`, or `blocked` for a count of 0."""
    if spec.count == 0:
        return "blocked"
    return f"{plural(spec.count, 'clip')} per {describe_period(spec.period_seconds)}"


def limit_origin(limit: EffectiveLimit) -> str:
    """Whose limit this is, said to the member: `your role limit <@&1>`."""
    return {
        "user": "your personal limit",
        "role": f"your role limit <@&{limit.role_id}>",
        "server": "this server's default limit",
        "operator": "the bot's default limit",
    }[limit.source]


def limit_source_label(limit: EffectiveLimit) -> str:
    """For moderators: `own override`, `role <@&1>`, `server default`, or the built-in one."""
    return {
        "user": "own override",
        "role": f"role <@&{limit.role_id}>",
        "server": "server default",
        "operator": "the bot's built-in default",
    }[limit.source]


def clips_left(remaining: int, spec: LimitSpec) -> str:
    """`2 of 3 clips left today`, for the member's progress or result message."""
    if spec.period_seconds == 86400:
        when = "today"
    elif spec.period_seconds in (3600, 604800):
        when = f"this {describe_period(spec.period_seconds)}"
    else:
        when = f"per {describe_period(spec.period_seconds)}"
    clips = "clip" if spec.count == 1 else "clips"
    return f"{remaining} of {spec.count} {clips} left {when}"


def allowance(admitted: Admitted) -> str:
    """What a request spends and what is left: `$0.36 · 2 of 3 clips left today`."""
    left = clips_left(admitted.remaining, admitted.limit.spec)
    return f"{format_usd(admitted.cost_usd)} · {left}" if admitted.cost_usd > 0 else left


# --- refusals ----------------------------------------------------------------------------


def refusal(error: RefusedError) -> str:
    """A refusal in the member's words, saying which limit applies and when to try again."""
    if isinstance(error, MemberBlocked):
        text = f"You are blocked from making videos here ({limit_origin(error.limit)})."
    elif isinstance(error, LimitReached):
        text = (
            f"You have reached {limit_origin(error.limit)}: {limit_words(error.limit.spec)}. "
            f"Your next slot frees {discord_timestamp(error.next_free_at)}."
        )
    elif isinstance(error, BudgetExhausted):
        text = f"{_budget_refusal(error)} It resets {discord_timestamp(error.resets_at)}."
    elif isinstance(error, SpendCeilingReached) and error.ceiling_usd <= 0:
        text = (
            "Whoever hosts this bot has paused video generation on every server; "
            "nothing was spent on this request."
        )
    elif isinstance(error, SpendCeilingReached):
        text = (
            "The bot has spent all it may today, across every server it is in (a limit set "
            f"by whoever hosts it). It resets {discord_timestamp(error.resets_at)}; "
            "nothing was spent on this request."
        )
    elif isinstance(error, DuplicateRequest):
        text = duplicate_refusal(error)
    elif isinstance(error, ChannelNotAllowed) and error.channel_ids:
        text = (
            f"Videos can only be made in {channels_where(error.channel_ids)} on this server "
            "(threads in them count too). Nothing was spent."
        )
    elif error.retry_at is not None:  # AccountPaused among others
        # Rounded down, as this refusal always has been (the limits' times round up).
        text = f"{error.user_message} You can try again <t:{int(error.retry_at)}:R>."
    else:
        text = error.user_message
    return text[:CONTENT_MAX]


def channels_where(channel_ids: tuple[int, ...]) -> str:
    """`<#1>`, `<#1> or <#2>`, `<#1>, <#2>, <#3>, <#4>, <#5> and 3 more channels`."""
    shown = [f"<#{channel_id}>" for channel_id in channel_ids[:CHANNELS_NAMED]]
    more = len(channel_ids) - len(shown)
    if more:
        return ", ".join(shown) + f" and {plural(more, 'more channel')}"
    if len(shown) == 1:
        return shown[0]
    return ", ".join(shown[:-1]) + f" or {shown[-1]}"


def duplicate_refusal(error: DuplicateRequest) -> str:
    """The answer to a double click: the first request is on its way, and where to watch it."""
    text = "You just asked for this same video, so it is made once: nothing more is spent."
    if error.message_id is None:
        return f"{text} Its progress message is on its way."
    if error.private:
        # An ephemeral message has no link; it is the member's own, just above.
        return f"{text} Its progress is in the private message above."
    link = f"https://discord.com/channels/{error.guild_id}/{error.channel_id}/{error.message_id}"
    return f"{text} [Follow its progress here]({link})."


def _budget_refusal(error: BudgetExhausted) -> str:
    if error.kind == "daily":
        return f"This server's daily limit of {plural(error.cap or 0, 'clip')} is reached."
    budget = error.budget_usd or 0.0
    left = budget - error.spent_usd
    if left < 0.005:  # would show as $0.00
        return f"This server's monthly video budget of {format_usd(budget)} is used up."
    return (
        f"This server's monthly video budget ({format_usd(budget)}) has {format_usd(left)} "
        f"left, not enough for another clip ({format_usd(error.clip_cost_usd)})."
    )


def budget_alert(error: BudgetExhausted) -> str:
    """What moderators are told the first time a server's cap stops requests."""
    resets = discord_timestamp(error.resets_at)
    if error.kind == "daily":
        reached = f"the daily cap of {plural(error.cap or 0, 'clip')} (UTC day) is reached"
    else:
        reached = (
            f"{format_usd(error.spent_usd)} of the monthly budget of "
            f"{format_usd(error.budget_usd or 0.0)} is spent and the next clip costs "
            f"{format_usd(error.clip_cost_usd)}"
        )
    return (
        f"Video generation is paused on this server: {reached}. It resets {resets}. "
        "Change it with `/videolimit budget`."
    )


def ceiling_alert(error: SpendCeilingReached) -> str:
    """What moderators are told the first time in a UTC day the operator's ceiling stops one."""
    if error.ceiling_usd <= 0:
        return (
            "Video generation is paused on every server this bot is in: whoever hosts it "
            "set its daily spending limit (`MAX_DAILY_SPEND_USD`) to 0."
        )
    return (
        "Video generation is paused on every server this bot is in: its operator's daily "
        f"spending limit of {format_usd(error.ceiling_usd)} (UTC day) is reached. It resets "
        f"{discord_timestamp(error.resets_at)}. Only whoever hosts the bot can change it "
        "(`MAX_DAILY_SPEND_USD`)."
    )
