"""What a server and the operator allow to be spent: the caps admission checks last.

A server's daily clip cap and monthly budget (in UTC days and months), and the operator's
daily ceiling across every server (``MAX_DAILY_SPEND_USD``). Each is counted as the
budgets count: clips that hold a place or that Segmind accepted, at the price stored with
each. The first refusal of each kind in its day or month records a note, so moderators
(or the operator) are told once; a raised cap or budget is a new note.

Read and written inside admission's transaction (``services.admission``): these are only
the checks and their notes, never the decision to store a job.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from services.errors import RefusedError
from services.models import GuildSettings
from services.storage import JobStore, Storage
from services.storage.database import Executor, Transaction
from services.utc_calendar import (
    day_key,
    month_key,
    utc_day_start,
    utc_month_start,
    utc_next_day,
    utc_next_month,
)

# The admission log: a reached cap is part of deciding a request.
log = logging.getLogger("services.admission")

# Sums of float prices: a cent's fraction must not refuse the clip that exactly fits.
_EPSILON_USD = 1e-6
# The operator's alerts (the spending ceiling) are remembered in alerts_sent under this
# id, which no Discord server has.
OPERATOR = 0


class BudgetExhausted(RefusedError):
    """The server's daily clip cap (``kind`` "daily") or monthly budget ("monthly") is reached.

    ``tell_moderators`` is True only the first time for this server, cap and day or
    month: then the Discord layer tells the moderators.
    """

    def __init__(
        self,
        *,
        kind: Literal["daily", "monthly"],
        resets_at: float,
        cap: int | None = None,
        budget_usd: float | None = None,
        spent_usd: float = 0.0,
        clip_cost_usd: float = 0.0,
    ) -> None:
        super().__init__(
            f"This server's {kind} video budget is used up.",
            retry_at=resets_at,
            detail=f"budget {kind} reached",
        )
        self.kind = kind
        self.resets_at = resets_at
        self.cap = cap
        self.budget_usd = budget_usd
        self.spent_usd = spent_usd
        self.clip_cost_usd = clip_cost_usd
        self.tell_moderators = False


class SpendCeilingReached(RefusedError):
    """The operator's daily spending ceiling (MAX_DAILY_SPEND_USD, all servers) is reached.

    It resets at the next UTC midnight. ``tell_moderators`` is True only the first time
    this server meets it that day: then the Discord layer tells its moderators.
    """

    def __init__(
        self, *, ceiling_usd: float, spent_usd: float, clip_cost_usd: float, resets_at: float
    ) -> None:
        super().__init__(
            "The bot's daily spending limit is reached.",
            retry_at=resets_at,
            detail=f"operator ceiling {ceiling_usd:.2f} USD reached (spent {spent_usd:.2f})",
        )
        self.ceiling_usd = ceiling_usd
        self.spent_usd = spent_usd
        self.clip_cost_usd = clip_cost_usd
        self.resets_at = resets_at
        self.tell_moderators = False


class SpendCaps:
    """The server's caps and the operator's ceiling, checked for one more clip."""

    def __init__(
        self, storage: Storage, *, clip_cost_usd: float, daily_ceiling_usd: float | None
    ) -> None:
        self._storage = storage
        self._clip_cost = clip_cost_usd
        self._daily_ceiling = daily_ceiling_usd

    async def refusal(
        self,
        tx: Transaction,
        settings: GuildSettings,
        now: float,
        *,
        clip_cost_usd: float | None = None,
    ) -> BudgetExhausted | SpendCeilingReached | None:
        """Why one more clip may not be spent on this server now, or None when it may.

        ``clip_cost_usd``: what this clip is reserved at, when more than CLIP_COST_USD
        (Segmind lately charged more for its size: ``services.reported_cost``).
        """
        price = self._clip_cost if clip_cost_usd is None else clip_cost_usd
        refusal: BudgetExhausted | SpendCeilingReached | None
        refusal = await self._budget_refusal(tx, settings, now, price)
        if refusal is None:
            refusal = await self._ceiling_refusal(tx, settings.guild_id, now, price)
        return refusal

    async def _budget_refusal(
        self, tx: Executor, settings: GuildSettings, now: float, price: float
    ) -> BudgetExhausted | None:
        """The server's caps, in UTC calendar days and months; records the first alert."""
        guild_id = settings.guild_id
        refusal: BudgetExhausted | None = None
        cap = settings.daily_clip_cap
        if cap is not None:
            clips_today, _ = await self._storage.jobs.guild_counted(
                guild_id, utc_day_start(now), tx=tx
            )
            if clips_today >= cap:
                refusal = BudgetExhausted(kind="daily", resets_at=utc_next_day(now), cap=cap)
                # The cap is in the key: a moderator who raises it hears again when it is hit.
                key = f"budget:daily:{day_key(now)}:{cap}"
        budget = settings.monthly_budget_usd
        if refusal is None and budget is not None:
            _, spent = await self._storage.jobs.guild_counted(guild_id, utc_month_start(now), tx=tx)
            if spent + price > budget + _EPSILON_USD:
                refusal = BudgetExhausted(
                    kind="monthly",
                    resets_at=utc_next_month(now),
                    budget_usd=budget,
                    spent_usd=spent,
                    clip_cost_usd=price,
                )
                key = f"budget:monthly:{month_key(now)}:{budget:.2f}"
        if refusal is None:
            return None
        if await self._storage.limits.mark_alert_sent(guild_id, key, at=now, tx=tx):
            refusal.tell_moderators = True
            log.warning("guild=%s %s reached; moderators to be told", guild_id, key)
        return refusal

    async def _ceiling_refusal(
        self, tx: Executor, guild_id: int, now: float, price: float
    ) -> SpendCeilingReached | None:
        """The operator's ceiling across all servers, per UTC day; records the first alerts.

        Counted as the server budgets count: clips that hold a place or that Segmind
        accepted, at the price stored with each.
        """
        ceiling = self._daily_ceiling
        if ceiling is None:
            return None
        spent = await spent_today(self._storage.jobs, now, tx=tx)
        refusal = ceiling_refusal(
            ceiling_usd=ceiling, spent_usd=spent, clip_cost_usd=price, now=now
        )
        if refusal is None:
            return None
        # The ceiling is in the key: an operator who raises it hears again when it is hit.
        key = f"ceiling:daily:{day_key(now)}:{ceiling:.2f}"
        async with _savepoint(tx):
            return await self._note_ceiling(tx, refusal, guild_id, key, now)

    async def _note_ceiling(
        self, tx: Executor, refusal: SpendCeilingReached, guild_id: int, key: str, now: float
    ) -> SpendCeilingReached:
        """The operator's and the server's notes, both or neither (one savepoint)."""
        ceiling, spent = refusal.ceiling_usd, refusal.spent_usd
        limits = self._storage.limits
        if await limits.mark_alert_sent(OPERATOR, key, at=now, tx=tx):
            log.error(
                "MAX_DAILY_SPEND_USD=%.2f reached: %.2f USD counted across all servers today"
                " (UTC); every new request is refused until UTC midnight. Raise the setting"
                " and restart to allow more.",
                ceiling,
                spent,
            )
        if await limits.mark_alert_sent(guild_id, key, at=now, tx=tx):
            refusal.tell_moderators = True
            log.warning("guild=%s %s reached; moderators to be told", guild_id, key)
        return refusal


async def spent_today(jobs: JobStore, now: float, *, tx: Executor) -> float:
    """What the operator's ceiling counts against: this UTC day's spend on every server.

    Clips that hold a place or that Segmind accepted, at the price stored with each, and
    those made with `bot.py generate` (stored under server 0). One function for the bot's
    admission and the CLI, so both see the same total.
    """
    _, spent = await jobs.counted_since(utc_day_start(now), tx=tx)
    return spent


def ceiling_refusal(
    *, ceiling_usd: float, spent_usd: float, clip_cost_usd: float, now: float
) -> SpendCeilingReached | None:
    """The refusal when one more clip would pass the operator's daily ceiling, else None."""
    if spent_usd + clip_cost_usd <= ceiling_usd + _EPSILON_USD:
        return None
    return SpendCeilingReached(
        ceiling_usd=ceiling_usd,
        spent_usd=spent_usd,
        clip_cost_usd=clip_cost_usd,
        resets_at=utc_next_day(now),
    )


@asynccontextmanager
async def _savepoint(tx: Executor) -> AsyncIterator[None]:
    """Inside a batch, undo only these statements if they fail, not the batch's others."""
    await tx.execute("SAVEPOINT spend_note")
    try:
        yield
    except BaseException:
        if isinstance(tx, Transaction) and not tx.active:
            raise  # the engine already gave up the whole transaction
        await tx.execute("ROLLBACK TO spend_note")
        await tx.execute("RELEASE spend_note")
        raise
    await tx.execute("RELEASE spend_note")
