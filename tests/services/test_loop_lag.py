import asyncio
import json
import time

from services import loop_lag


async def test_a_blocked_loop_shows_as_lag_in_the_written_samples(tmp_path, monkeypatch):
    target = tmp_path / "lag.json"
    monkeypatch.setenv(loop_lag.ENV_VAR, str(target))
    async with loop_lag.sampling_if_asked():
        await asyncio.sleep(0.05)
        time.sleep(0.3)  # noqa: ASYNC251 (the point: the loop is held, the sampler wakes late)
        await asyncio.sleep(0.15)
    samples = json.loads(target.read_text())["samples"]
    assert max(lag for _, lag in samples) >= 0.2


async def test_nothing_is_sampled_or_written_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(loop_lag.ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    async with loop_lag.sampling_if_asked():
        await asyncio.sleep(0.01)
    assert not any(task.get_name() == "loop-lag-sampler" for task in asyncio.all_tasks())
    assert list(tmp_path.iterdir()) == []
