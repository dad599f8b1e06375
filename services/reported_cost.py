"""What Segmind says a finished clip cost (`metrics.cost`), checked before budgets trust it.

Admission reserves each job at an honest upper estimate: ``CLIP_COST_USD``, or more when
Segmind's latest reports for clips of the same size say more (``reservation_usd``), so limits,
budgets and the operator's ceiling hold while clips are made. When the result reports a
cost, that figure replaces the reservation, stored with the result itself, so every sum of
``cost_usd`` (server budgets, usage reports, the operator's daily ceiling) counts what
Segmind charged. A figure that cannot be a price is never worth failing a paid clip over:
the estimate stays and the operator is told.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from services.models import VideoRequest
from services.storage import JobStore
from services.storage.database import Executor

log = logging.getLogger(__name__)

# No single clip of this model costs anything near this (Segmind lists about $0.36): a
# larger figure is a unit mix-up (cents, credits) or garbage, not a price to bill against.
MAX_REPORTED_COST_USD = 100.0
# Segmind's figure is trusted only within this factor of CLIP_COST_USD either way: the
# operator's estimate is from Segmind's price list, so a figure 100x off is cents or
# credits, and one that small would let budgets undercount what is really billed.
TRUSTED_FACTOR = 10.0
# How far back admission looks for what Segmind charged for the same clip size, and at
# most how many reported jobs it reads (a bounded, indexed read inside its transaction).
RECENT_PRICE_SECONDS = 7 * 86400.0
RECENT_PRICE_JOBS = 500
# Of those, only this many newest reports per clip size set its reservation (their highest).
# Taking the week's highest let one odd figure (a retried job billed twice, say) reserve
# every clip of the size at it for 7 days, so budgets refused far too early and members were
# quoted it. The newest three still follow a real price rise at its first report, and one
# outlier is outvoted once three newer reports exist.
RECENT_PRICE_LATEST = 3

# What drives Segmind's price for a clip: it bills GPU time, which grows with the frames
# made and the denoising steps of each; the prompt, guidance and frame rate do not change it.
PriceKind = tuple[int, int]  # (input_frames, steps)


# 0.36 x 10 is 3.5999999999999996 in floats: a figure exactly at a bound is within it.
_EPSILON_USD = 1e-9


def trusted_range(estimate_usd: float) -> tuple[float, float]:
    """The reported figures believed as prices, given the operator's CLIP_COST_USD."""
    low = estimate_usd / TRUSTED_FACTOR - _EPSILON_USD
    return low, min(estimate_usd * TRUSTED_FACTOR, MAX_REPORTED_COST_USD) + _EPSILON_USD


def price_kind(request: VideoRequest) -> PriceKind:
    return (request.input_frames, request.steps)


def reported_cost_usd(
    metrics: Mapping[str, Any],
    *,
    job_id: int,
    estimate_usd: float,
    reserved_usd: float | None = None,
) -> float | None:
    """Segmind's own cost for the job in US dollars, or None to keep the estimate.

    ``estimate_usd`` is CLIP_COST_USD (the bound is relative to it); ``reserved_usd`` what
    admission reserved for the job, to warn when Segmind charged more than that.
    """
    if "cost" not in metrics:
        return None
    value = metrics["cost"]
    # bool is an int in Python, and a string is not a number here even if it reads as one:
    # Segmind's documented field is a JSON number.
    if isinstance(value, bool) or not isinstance(value, int | float):
        log.warning(
            "job=%s Segmind reported a cost that is not a number (%s); keeping the estimate",
            job_id,
            type(value).__name__,
        )
        return None
    cost = float(value)
    low, high = trusted_range(estimate_usd)
    if not math.isfinite(cost) or not 0.0 <= cost < MAX_REPORTED_COST_USD:
        log.warning(
            "job=%s Segmind reported a cost out of range (%r); keeping the estimate", job_id, cost
        )
        return None
    if not low <= cost <= high:
        log.warning(
            "job=%s Segmind reported %.4f USD, not within %gx of CLIP_COST_USD=%.4f (a unit"
            " mix-up?); keeping the estimate",
            job_id,
            cost,
            TRUSTED_FACTOR,
            estimate_usd,
        )
        return None
    if reserved_usd is not None and cost > reserved_usd:
        # Budgets and the ceiling let this job in at the reservation: they may now be passed
        # by the difference. The next clips of this size are reserved at this figure.
        log.warning(
            "job=%s Segmind reported %.4f USD, more than the %.4f USD reserved for it",
            job_id,
            cost,
            reserved_usd,
        )
    return cost


async def recent_prices(
    jobs: JobStore, now: float, estimate_usd: float, *, tx: Executor
) -> dict[PriceKind, float]:
    """For each clip size, the highest of the latest trusted figures Segmind reported."""
    low, high = trusted_range(estimate_usd)
    return await jobs.highest_reported_costs(
        now - RECENT_PRICE_SECONDS,
        low=low,
        high=high,
        limit=RECENT_PRICE_JOBS,
        latest=RECENT_PRICE_LATEST,
        tx=tx,
    )


def reservation_usd(
    request: VideoRequest, estimate_usd: float, recent: Mapping[PriceKind, float]
) -> float:
    """What admission charges a job until Segmind reports its cost: an honest upper estimate.

    The most Segmind charged for the latest few clips of this size, never less than
    CLIP_COST_USD.
    """
    return max(estimate_usd, recent.get(price_kind(request), 0.0))
