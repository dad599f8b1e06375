"""How far along a job at Segmind probably is: Segmind reports states, never a fraction."""

from __future__ import annotations


def estimate_fraction(elapsed: float, expected: float) -> float:
    """A progress estimate that moves steadily and never claims to be done before it is."""
    if expected <= 0:
        return 0.0
    ratio = elapsed / expected
    if ratio <= 0.8:
        return ratio
    # Past 80 %, approach 99 % asymptotically instead of sitting at 100 % for minutes.
    return min(0.99, 0.8 + 0.19 * (1 - 1 / (1 + 4 * (ratio - 0.8))))
