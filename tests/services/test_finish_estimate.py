"""The learned estimate of a job's end: a prior, then other kinds' history, then its own."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from services.finish_estimate import (
    OWN_HISTORY,
    RECENT_SAMPLES,
    After,
    Durations,
    Grid,
    JobForecast,
    Timing,
    TimingModel,
    end_grid,
    work_of,
)
from services.models import SegmindState
from services.poll_schedule import AdaptiveSchedule
from services.storage import Storage


def test_before_any_history_the_prior_scales_the_expected_time_by_the_work() -> None:
    model = TimingModel(240.0)

    default = model.processing(49, 45)
    light = model.processing(25, 45)

    assert default.mean == pytest.approx(240.0)
    assert light.mean == pytest.approx(240.0 * work_of(25, 45))
    assert default.low < 0.7 * 240 and default.high > 1.3 * 240  # wide: nothing is known


def test_a_kind_without_history_learns_from_other_kinds_per_unit_of_work() -> None:
    model = TimingModel(240.0)
    for _ in range(OWN_HISTORY):
        model.learn(Timing(49, 45, queue_seconds=2.0, processing_seconds=100.0))

    other = model.processing(49, 25)

    assert other.mean == pytest.approx(100.0 * work_of(49, 25) / work_of(49, 45))
    assert model.queue().mean == pytest.approx(2.0)


def test_a_kind_with_its_own_history_follows_it_and_forgets_the_oldest() -> None:
    model = TimingModel(240.0)
    for _ in range(RECENT_SAMPLES):
        model.learn(Timing(49, 45, queue_seconds=0.0, processing_seconds=300.0))
    for _ in range(RECENT_SAMPLES):  # Segmind got faster
        model.learn(Timing(49, 45, queue_seconds=0.0, processing_seconds=150.0))

    assert model.processing(49, 45).mean == pytest.approx(150.0)


def test_a_non_positive_expected_time_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        TimingModel(0.0)


def test_a_watched_job_teaches_midpoints_of_what_the_polls_saw() -> None:
    forecast = JobForecast(
        TimingModel(240.0), input_frames=49, steps=45, submitted_at=100.0, cell=0.4
    )
    for state, at in [
        (SegmindState.QUEUED, 104.0),
        (SegmindState.PROCESSING, 106.0),
        (SegmindState.PROCESSING, 300.0),
        (SegmindState.COMPLETED, 302.0),
    ]:
        forecast.seen(state, at)

    timing = forecast.timing()

    assert timing == Timing(49, 45, queue_seconds=5.0, processing_seconds=196.0)


def test_a_resumed_job_or_one_never_seen_processing_teaches_nothing() -> None:
    resumed = JobForecast(
        TimingModel(240.0), input_frames=49, steps=45, submitted_at=0.0, cell=0.4, fresh=False
    )
    resumed.seen(SegmindState.PROCESSING, 50.0)
    resumed.seen(SegmindState.COMPLETED, 250.0)
    quick = JobForecast(TimingModel(240.0), input_frames=49, steps=45, submitted_at=0.0, cell=0.4)
    quick.seen(SegmindState.QUEUED, 1.0)
    quick.seen(SegmindState.COMPLETED, 60.0)

    assert resumed.timing() is None
    assert quick.timing() is None


def test_the_grid_holds_all_the_probability() -> None:
    model = TimingModel(240.0)
    forecast = JobForecast(model, input_frames=49, steps=45, submitted_at=0.0, cell=0.4)
    forecast.seen(SegmindState.PROCESSING, 10.0)

    assert sum(forecast.grid().mass) == pytest.approx(1.0, abs=0.01)


def after_by_summing(grid: Grid, now: float) -> After | None:
    """What ``Grid.after`` means, summed cell by cell from ``now`` on."""
    masses, middles = [], []
    for index, mass in enumerate(grid.mass):
        low, high = grid.start + index * grid.step, grid.start + (index + 1) * grid.step
        if high <= now:
            continue
        if now > low:  # the cell holding ``now``: only its part still ahead
            mass *= (high - now) / grid.step
        masses.append(mass)
        middles.append((max(now, low) + high) / 2)
    left = sum(masses)
    if left <= 1e-9:
        return None
    running, likely = 0.0, middles[-1]
    for mass, middle in zip(masses, middles, strict=True):
        running += mass
        if running >= 0.8 * left:
            likely = middle
            break
    mean = sum(m * t for m, t in zip(masses, middles, strict=True)) / left
    return After(mean, likely, left / sum(grid.mass))


def assert_same_after(got: After | None, want: After | None) -> None:
    assert (got is None) == (want is None)
    if got is not None and want is not None:
        assert got.mean == pytest.approx(want.mean, rel=1e-9)
        assert got.likely == pytest.approx(want.likely, rel=1e-12)
        assert got.share_left == pytest.approx(want.share_left, rel=1e-9, abs=1e-15)


def test_what_is_left_of_the_end_matches_a_sum_over_the_cells_ahead() -> None:
    rng = random.Random(11)
    for _ in range(60):
        base = rng.choice([5.0, 90.0, 240.0])
        samples = [abs(rng.gauss(base, base * 0.1)) for _ in range(rng.choice([1, 4, 16, 32]))]
        at = rng.uniform(0.0, 1e4)
        grid = end_grid(Durations(samples, floor=0.5), (at, at + rng.uniform(0, 20)), 0.4)
        for _ in range(30):
            now = rng.uniform(grid.start - 2, grid.end + 2)
            assert_same_after(grid.after(now), after_by_summing(grid, now))


@pytest.mark.parametrize(
    "mass",
    [(0.2,) * 5, (0.1, 0.0, 0.3, 0.4, 0.0, 0.2), (0.5, 0.3, 0.0, 0.0, 0.2)],
    ids=["even", "gaps", "empty-stretch"],
)
def test_an_end_that_reaches_four_in_five_exactly_at_a_cell_is_placed_as_summed(
    mass: tuple[float, ...],
) -> None:
    grid = Grid(100.0, 2.0, mass)  # few samples put exact fractions in the cells

    for now in [99.0, 100.0, 101.0, 102.0, 103.5, 104.0, 107.9, 108.0, 109.99, 110.0]:
        assert_same_after(grid.after(now), after_by_summing(grid, now))


def test_a_learned_distribution_is_worked_out_again_once_a_timing_is_learned() -> None:
    model = TimingModel(240.0)
    before = model.processing(49, 45)
    model.queue()

    assert model.processing(49, 45) is before  # worked out once for the jobs until then
    for _ in range(OWN_HISTORY):
        model.learn(Timing(49, 45, queue_seconds=1.0, processing_seconds=100.0))
    assert model.processing(49, 45).mean == pytest.approx(100.0)
    assert model.queue().mean == pytest.approx(1.0)


# --- kept in the database -------------------------------------------------------------


async def test_timings_survive_a_restart_and_only_the_newest_are_kept(
    database_location: Path | str,
) -> None:
    storage = await Storage.open(database_location)
    for index in range(RECENT_SAMPLES * 3):
        await storage.timings.add(Timing(49, 45, 1.0, float(index)), now=float(index))
    await storage.timings.add(Timing(25, 25, 2.0, 50.0), now=1.0)
    await storage.close()

    reopened = await Storage.open(database_location)
    try:
        kept = await reopened.timings.recent()
    finally:
        await reopened.close()

    default = [t.processing_seconds for t in kept if (t.input_frames, t.steps) == (49, 45)]
    assert default == [float(i) for i in range(RECENT_SAMPLES, RECENT_SAMPLES * 3)]
    assert Timing(25, 25, 2.0, 50.0) in kept


# --- what must not be learned ---------------------------------------------------------


@pytest.mark.parametrize(
    "timing",
    [
        Timing(49, 45, 1.0, float("inf")),
        Timing(49, 45, float("nan"), 240.0),
        Timing(49, 45, -1.0, 240.0),
        Timing(49, 45, 1.0, 4 * 3600.0),  # longer than any deadline allows
        Timing(49, 45, 1.0, 3000.0),  # 12x what this kind takes: a clock step, not Segmind
        Timing(49, 45, 1.0, 2.0),
    ],
    ids=["inf", "nan", "negative", "past-every-deadline", "10x-slower", "10x-faster"],
)
def test_an_impossible_timing_is_not_learned(timing: Timing) -> None:
    model = TimingModel(240.0)
    for _ in range(8):
        model.learn(Timing(49, 45, 1.0, 240.0))

    model.learn(timing)

    assert set(model.processing(49, 45).samples) == {240.0}


def test_a_wrong_prior_is_still_corrected_by_what_segmind_does() -> None:
    model = TimingModel(3600.0)  # EXPECTED_CLIP_SECONDS set far too high

    for _ in range(4):
        model.learn(Timing(49, 45, 1.0, 240.0))

    assert model.processing(49, 45).mean == pytest.approx(240.0)


def test_one_stray_time_does_not_widen_the_window_polled_densely() -> None:
    tight = TimingModel(240.0)
    strayed = TimingModel(240.0)
    for index in range(31):
        for model in (tight, strayed):
            model.learn(Timing(49, 45, 1.0, 230.0 + index * 20 / 31))
    strayed.learn(Timing(49, 45, 1.0, 900.0))

    assert strayed.processing(49, 45).bandwidth <= 1.5 * tight.processing(49, 45).bandwidth


def test_a_segmind_twice_as_fast_is_learned_though_its_ends_fall_between_sparse_polls() -> None:
    model = TimingModel(240.0)
    for _ in range(RECENT_SAMPLES):
        model.learn(Timing(49, 45, 1.0, 240.0))

    for _ in range(RECENT_SAMPLES):
        schedule = AdaptiveSchedule(
            JobForecast(model, input_frames=49, steps=45, submitted_at=0.0, cell=0.4), 1.6
        )
        now = schedule.first_delay(0.0)
        while True:
            state = SegmindState.PROCESSING if now < 121.0 else SegmindState.COMPLETED
            schedule.seen(state if now > 1.0 else SegmindState.QUEUED, now)
            if state is SegmindState.COMPLETED:
                break
            now += schedule.next_delay(now)
        timing = schedule.forecast.timing()
        assert timing is not None
        model.learn(timing)

    assert model.processing(49, 45).median == pytest.approx(120.0, rel=0.2)
