"""What Segmind says a finished clip cost (`metrics.cost`), checked before budgets trust it.

Admission charges the operator's estimate (``CLIP_COST_USD``) so limits and budgets hold
while a clip is made. When the result reports a cost, that figure replaces the estimate,
stored with the result itself, so every sum of ``cost_usd`` (server budgets, usage reports,
the operator's daily ceiling) counts what Segmind charged. A figure that cannot be a price
is never worth failing a paid clip over: the estimate stays and the operator is told.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

# No single clip of this model costs anything near this (Segmind lists about $0.36): a
# larger figure is a unit mix-up (cents, credits) or garbage, not a price to bill against.
MAX_REPORTED_COST_USD = 100.0


def reported_cost_usd(metrics: Mapping[str, Any], *, job_id: int) -> float | None:
    """Segmind's own cost for the job in US dollars, or None to keep the estimate."""
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
    if not math.isfinite(cost) or not 0.0 <= cost < MAX_REPORTED_COST_USD:
        log.warning(
            "job=%s Segmind reported a cost out of range (%r); keeping the estimate", job_id, cost
        )
        return None
    return cost
