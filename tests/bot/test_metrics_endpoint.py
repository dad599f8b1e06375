"""/metrics and /healthz as Prometheus and a supervisor see them, scraped over loopback HTTP.

The whole bot runs against the fake Discord and the simulator with METRICS_PORT set (to 0,
which the server answers with a free port, so tests never collide).
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cogs.videobot import VideoBot
from services.app import Services, open_services
from services.models import JobState
from tests.bot.conftest import fast_settings
from tests.bot.helpers import TIMEOUT, video, wait_for_clip, wait_idle
from tests.fakediscord import FakeDiscord, Fault
from tests.harness.env import bot_env
from tests.services.test_metrics import sample

PROMPT = "a lighthouse in a storm, private words"


@pytest.fixture
async def services(bot_env, simulator) -> AsyncIterator[Services]:
    settings = replace(fast_settings(bot_env), metrics_port=0)
    async with open_services(settings, segmind_base_url=simulator.base_url) as opened:
        yield opened


async def scrape(bot: VideoBot, path: str) -> tuple[int, str]:
    assert bot.metrics_server is not None and bot.metrics_server.port
    url = f"http://127.0.0.1:{bot.metrics_server.port}{path}"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.text()


async def wait_for_health(bot: VideoBot, status: int) -> str:
    """The /healthz body once it answers ``status``: scraped until then, never slept on."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            answered, text = await scrape(bot, "/healthz")
            if answered == status:
                return text
            await asyncio.sleep(0.01)


async def test_metrics_move_as_a_job_goes_through(
    bot: VideoBot, fake_discord: FakeDiscord, services: Services
) -> None:
    status, before = await scrape(bot, "/metrics")
    assert status == 200
    assert sample(before, "videobot_jobs", state="delivered") == 0
    assert sample(before, "videobot_segmind_submits_total", outcome="accepted") == 0
    assert sample(before, "videobot_deliveries_total", route="channel", form="file") == 0
    assert sample(before, "videobot_errors_total", service="discord", code="429") is None
    assert sample(before, "videobot_discord_rate_limited_total") == 0

    # Discord makes the clip's post wait once: discord.py waits it out, the metric sees it.
    fake_discord.inject(Fault.rate_limited("POST /channels/*/messages", retry_after=0.05))
    alice = fake_discord.world.member_named("alice")
    record = await video(fake_discord, alice, {"prompt": PROMPT})
    await wait_for_clip(fake_discord, record.channel_id)
    await wait_idle(services.runner)

    _, after = await scrape(bot, "/metrics")
    guild = str(fake_discord.world.guild.id)
    assert sample(after, "videobot_jobs", state="delivered") == 1
    assert sample(after, "videobot_jobs", state="queued") == 0
    assert sample(after, "videobot_segmind_submits_total", outcome="accepted") == 1
    polls = sample(after, "videobot_segmind_status_polls_total")
    assert polls is not None and polls >= 2  # seen unfinished, then finished
    assert sample(after, "videobot_segmind_detection_delay_seconds_count") == 1
    assert sample(after, "videobot_queue_wait_seconds_count") == 1
    assert sample(after, "videobot_generation_seconds_count") == 1
    assert sample(after, "videobot_deliveries_total", route="channel", form="file") == 1
    assert sample(after, "videobot_errors_total", service="discord", code="429") == 1
    assert sample(after, "videobot_discord_rate_limited_total") == 1
    assert sample(after, "videobot_spend_counted_usd", guild=guild) == pytest.approx(0.36)
    assert sample(after, "videobot_spend_billed_usd_total", guild=guild) == pytest.approx(0.36)
    assert sample(after, "videobot_account_paused", gate="credits") == 0
    # Never a prompt or a token in a label.
    assert "private words" not in after
    assert fake_discord.world.token not in after


def deliveries(text: str) -> dict[tuple[str, str], float]:
    """Every delivery counted, by (route, form), zeros left out."""
    return {
        (found.labels["route"], found.labels["form"]): found.value
        for family in text_string_to_metric_families(text)
        for found in family.samples
        if found.name == "videobot_deliveries_total" and found.value
    }


async def test_a_clip_found_after_its_answer_was_lost_is_delivered_once(
    bot: VideoBot, fake_discord: FakeDiscord, services: Services
) -> None:
    alice = fake_discord.world.member_named("alice")
    channel = fake_discord.world.guild.channels[0]
    # Discord stores the clip, then answers 503: the bot's retry finds its own post.
    uploads = f"POST /channels/{channel.id}/messages"
    fake_discord.inject(Fault.server_error(uploads, status=503, after_apply=True))
    await video(fake_discord, alice, {"prompt": PROMPT})
    await wait_for_clip(fake_discord, channel.id)
    await wait_idle(services.runner)

    _, text = await scrape(bot, "/metrics")
    assert deliveries(text) == {("found", "unknown"): 1}


async def test_a_private_clip_posted_again_after_its_record_failed_counts_once(
    bot: VideoBot, fake_discord: FakeDiscord, services: Services, monkeypatch
) -> None:
    jobs = services.storage.jobs
    record_as_stored = jobs.update
    failed: list[int] = []

    async def fail_the_first_delivered_record(job_id, **fields):
        if fields.get("state") is JobState.DELIVERED and not failed:
            failed.append(job_id)
            raise OSError("disk full")
        return await record_as_stored(job_id, **fields)

    monkeypatch.setattr(jobs, "update", fail_the_first_delivered_record)
    alice = fake_discord.world.member_named("alice")
    record = await video(fake_discord, alice, {"prompt": PROMPT, "private": True})
    await wait_for_clip(fake_discord, record.channel_id, viewer=alice)
    await wait_idle(services.runner)

    job = await jobs.get(failed[0])
    assert job is not None and job.state is JobState.DELIVERED
    _, text = await scrape(bot, "/metrics")
    # The progress message was edited into the clip twice; it was delivered once.
    assert deliveries(text) == {("edit", "file"): 1}


async def test_health_is_503_while_the_gateway_is_down_and_200_once_back(
    bot: VideoBot, fake_discord: FakeDiscord
) -> None:
    assert await scrape(bot, "/healthz") == (200, "ok\n")
    # discord.py's own hook before it identifies again: holds the reconnect until released,
    # so the outage lasts as long as the test needs to see it.
    released = asyncio.Event()

    async def hold_reconnect(shard_id: int | None, *, initial: bool = False) -> None:
        await released.wait()

    bot.before_identify_hook = hold_reconnect  # type: ignore[method-assign]
    try:
        await fake_discord.gateway.close_all(code=1001)
        assert await wait_for_health(bot, 503) == "Discord gateway not connected\n"
    finally:
        released.set()
    assert await wait_for_health(bot, 200) == "ok\n"


async def test_a_metrics_port_in_use_stops_the_start_with_one_line(
    tmp_path: Path, fake_discord: FakeDiscord
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.harness.run_bot", "--simulate",
            cwd=tmp_path,
            env=bot_env(tmp_path, fake_discord, METRICS_PORT=str(port)),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    text = stderr.decode()
    assert process.returncode == 2, text
    assert f"METRICS_PORT={port}: cannot listen on 127.0.0.1:{port}" in text
    assert "Traceback" not in text and fake_discord.world.token not in text
