"""The one backoff policy: Retry-After within a floor and a ceiling, else capped equal jitter."""

from __future__ import annotations

import math
import random

import pytest

from services.backoff import Backoff

POLICY = Backoff(base=1.0, cap=30.0, max_retry_after=120.0)


@pytest.mark.parametrize("asked", [0.0, -5.0, 0.2])
def test_a_retry_after_below_the_base_waits_the_base(asked: float) -> None:
    assert POLICY.delay(1, random.Random(1), retry_after=asked) == 1.0


def test_a_retry_after_within_bounds_is_waited_exactly_whatever_the_attempt() -> None:
    rng = random.Random(1)
    assert [POLICY.delay(n, rng, retry_after=7.5) for n in (1, 5, 10_000)] == [7.5, 7.5, 7.5]


@pytest.mark.parametrize("asked", [121.0, 86_400.0, math.inf])
def test_a_retry_after_above_the_ceiling_waits_the_ceiling(asked: float) -> None:
    assert POLICY.delay(1, random.Random(1), retry_after=asked) == 120.0


def test_a_retry_after_that_is_not_a_number_is_ignored() -> None:
    waited = POLICY.delay(1, random.Random(1), retry_after=math.nan)
    assert 0.5 <= waited <= 1.0


def test_without_retry_after_each_wait_lies_between_half_and_all_of_a_doubling_ceiling() -> None:
    rng = random.Random(7)
    for attempt, ceiling in enumerate([1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0], start=1):
        waits = [POLICY.delay(attempt, rng) for _ in range(200)]
        assert min(waits) >= ceiling / 2
        assert max(waits) <= ceiling
        assert max(waits) - min(waits) > ceiling / 4  # jittered across the range, not fixed


def test_jitter_comes_from_the_given_random_source() -> None:
    first = [POLICY.delay(3, random.Random(42)) for _ in range(3)]
    assert first == [first[0]] * 3  # the same seed, the same wait
    assert POLICY.delay(3, random.Random(43)) != first[0]


def test_waits_grow_with_the_attempt_on_average() -> None:
    rng = random.Random(3)
    means = [sum(POLICY.delay(n, rng) for _ in range(100)) / 100 for n in (1, 2, 3, 4)]
    assert means == sorted(means) and means[-1] > 4 * means[0]


def test_a_huge_attempt_number_neither_overflows_nor_passes_the_cap() -> None:
    waited = POLICY.delay(10_000, random.Random(1))
    assert math.isfinite(waited)
    assert 15.0 <= waited <= 30.0


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="attempt counts from 1"):
        POLICY.delay(0, random.Random(1))


@pytest.mark.parametrize(
    "options",
    [
        {"base": 0.0, "cap": 1.0},
        {"base": -1.0, "cap": 1.0},
        {"base": 2.0, "cap": 1.0},
        {"base": 2.0, "cap": 5.0, "max_retry_after": 1.0},
    ],
)
def test_a_policy_that_could_spin_or_never_grow_is_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="Backoff"):
        Backoff(**options)
