"""/videoqueue over the wire: a member's own videos, a moderator's server, Cancel, Show, pages.

Segmind is held on its own clock, so jobs stay queued or running while a scenario reads
the listing; one job runs at a time (MAX_CONCURRENT_JOBS=1) so the others wait in line.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from cogs.videobot import Timings
from services.simulator import SegmindSimulator
from tests.bot.helpers import (
    CANCELLED,
    MAKING,
    TIMEOUT,
    answer,
    field,
    finish_segmind_jobs,
    has_button,
    start_held_simulator,
    title,
    video,
    wait_for_clip,
    wait_for_reply,
    wait_for_status,
    wait_for_title,
    wait_idle,
)
from tests.bot.test_moderation import only_for, settled_answer, videolimit
from tests.conftest import SimulatorFactory
from tests.fakeclock import FakeClock
from tests.fakediscord import FakeDiscord, FakeMember, InteractionRecord, StoredMessage

TIMESTAMP = re.compile(r"<t:(\d+):R>")


@pytest.fixture
def bot_env(bot_env: dict[str, str]) -> dict[str, str]:
    return {**bot_env, "MAX_CONCURRENT_JOBS": "1"}


@pytest.fixture
def bot_timings() -> Timings:
    return Timings(progress_edit_interval=0.3)


@pytest.fixture
async def simulator(
    simulator_factory: SimulatorFactory, segmind_clock: FakeClock
) -> SegmindSimulator:
    return await start_held_simulator(simulator_factory, segmind_clock)


@pytest.fixture
def bob(fake_discord: FakeDiscord) -> FakeMember:
    return fake_discord.world.guild.add_member("bob")


async def videoqueue(
    fake: FakeDiscord, user: FakeMember, options: dict[str, Any] | None = None
) -> StoredMessage:
    """``/videoqueue`` as ``user``; the bot's answer once it says something."""
    record = await fake.dispatch_slash_command("videoqueue", options or {}, user=user)
    await fake.wait_for_ack(record)
    return await settled_answer(fake, record)


def listing(message: StoredMessage) -> str:
    return message.embeds[0]["description"] if message.embeds else ""


def job_id_of(fake: FakeDiscord, record: InteractionRecord) -> int:
    """The job a /video answered with, from its progress message's Cancel button."""
    custom_id = has_button(answer(fake, record), "cancel")
    assert custom_id is not None
    return int(custom_id.split(":")[2])


def button(message: StoredMessage, prefix: str) -> str:
    found = [cid for cid in message.custom_ids() if cid.startswith(prefix)]
    assert len(found) == 1, (prefix, message.custom_ids())
    return found[0]


async def press(
    fake: FakeDiscord, message: StoredMessage, custom_id: str, user: FakeMember
) -> StoredMessage:
    """``user`` presses the button; the bot's private answer, once it says something."""
    record = await fake.dispatch_component(message, custom_id, user=user)
    await fake.wait_for_ack(record)
    return await wait_for_reply(fake, record, lambda m: bool(m.content))


async def test_a_member_sees_their_own_videos_with_place_state_times_and_cancel(
    bot, fake_discord: FakeDiscord, bob: FakeMember, services
):
    alice = fake_discord.world.member_named("alice")
    running = await video(fake_discord, alice, {"prompt": "a fox in the snow"})
    await wait_for_status(fake_discord, running.original_message_id, "Queued at Segmind")
    waiting = await video(fake_discord, alice, {"prompt": "a fox at dawn"})
    others = await video(fake_discord, bob, {"prompt": "bob's secret garden"})
    # Bob's progress message and his listing say the same words for the same state.
    await wait_for_status(fake_discord, others.original_message_id, "Waiting in line: you are next")

    shown = await videoqueue(fake_discord, alice)

    assert only_for(shown, alice) and shown.pinged_user_ids == frozenset()
    text = listing(shown)
    assert "a fox in the snow" in text and "a fox at dawn" in text
    assert "bob's secret garden" not in text
    assert "Queued at Segmind" in text and "Waiting for your other video to finish" in text
    assert "expected to finish" in text or "almost done" in text
    job = await services.storage.jobs.get(job_id_of(fake_discord, running))
    assert job is not None and job.submitted_at is not None
    started, *_ = (int(t) for t in TIMESTAMP.findall(text))
    assert abs(started - job.submitted_at) <= 1  # accurate to the second
    assert "2 used in the last day, 3 left" in text
    cancels = sorted(
        cid.split(":")[2] for cid in shown.custom_ids() if cid.startswith("vjob:cancel:")
    )
    expected = sorted(str(job_id_of(fake_discord, r)) for r in (running, waiting))
    assert cancels == expected

    bobs = listing(await videoqueue(fake_discord, bob))
    assert "Waiting in line: you are next" in bobs and "a fox" not in bobs


async def test_cancel_from_the_listing_stops_the_job_and_it_is_never_submitted(
    bot,
    fake_discord: FakeDiscord,
    services,
    simulator: SegmindSimulator,
    segmind_clock: FakeClock,
):
    alice = fake_discord.world.member_named("alice")
    first = await video(fake_discord, alice, {"prompt": "the first clip"})
    await wait_for_status(fake_discord, first.original_message_id, "Queued at Segmind")
    second = await video(fake_discord, alice, {"prompt": "the second clip"})
    shown = await videoqueue(fake_discord, alice)

    cancel = button(shown, f"vjob:cancel:{job_id_of(fake_discord, second)}:")
    note = await press(fake_discord, shown, cancel, alice)

    assert only_for(note, alice) and "Nothing was spent" in note.content
    await wait_for_title(fake_discord, second.original_message_id, CANCELLED)
    finish_segmind_jobs(segmind_clock)
    await wait_for_clip(fake_discord, first.channel_id)
    await wait_idle(services.runner)
    assert [s["prompt"] for s in simulator.submits] == ["the first clip"]
    after = listing(await videoqueue(fake_discord, alice))
    assert "Nothing queued or running" in after


async def test_a_member_is_refused_the_server_scope_privately(bot, fake_discord: FakeDiscord):
    alice = fake_discord.world.member_named("alice")
    refusal = await videoqueue(fake_discord, alice, {"scope": "server"})
    assert only_for(refusal, alice)
    assert "Only moderators can list every video on the server" in refusal.content
    assert not refusal.embeds and not refusal.components


async def test_a_moderator_sees_every_job_with_private_prompts_hidden_until_show(
    bot, fake_discord: FakeDiscord, bob: FakeMember, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="services.job_queue")
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    public = await video(fake_discord, bob, {"prompt": "a public lighthouse"})
    await wait_for_status(fake_discord, public.original_message_id, "Queued at Segmind")
    hidden = await video(fake_discord, alice, {"prompt": "a surprise for mum", "private": True})
    hidden_id = job_id_of(fake_discord, hidden)

    shown = await videoqueue(fake_discord, mod, {"scope": "server"})

    assert only_for(shown, mod) and shown.pinged_user_ids == frozenset()
    text = listing(shown)
    assert "a public lighthouse" in text and f"<@{bob.id}>" in text
    assert "*private prompt*" in text and f"<@{alice.id}>" in text
    assert "surprise" not in text
    assert len([c for c in shown.custom_ids() if c.startswith("vjob:cancel:")]) == 2
    show = button(shown, f"vqueue:show:{hidden_id}:")

    revealed = await press(fake_discord, shown, show, mod)

    assert only_for(revealed, mod)
    assert "a surprise for mum" in revealed.content
    assert any(
        "viewed the private prompt" in r.getMessage() and f"job={hidden_id}" in r.getMessage()
        for r in caplog.records
    )


async def test_a_demoted_moderator_can_no_longer_show_or_cancel_from_an_old_listing(
    bot, fake_discord: FakeDiscord, bob: FakeMember, services
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    hidden = await video(fake_discord, alice, {"prompt": "a quiet secret", "private": True})
    await wait_for_status(fake_discord, hidden.original_message_id, "Queued at Segmind")
    job_id = job_id_of(fake_discord, hidden)
    shown = await videoqueue(fake_discord, mod, {"scope": "server"})
    mod.roles.clear()  # no longer a moderator: buttons check again at the click

    show = await press(fake_discord, shown, button(shown, f"vqueue:show:{job_id}:"), mod)
    cancel = await press(fake_discord, shown, button(shown, f"vjob:cancel:{job_id}:"), mod)

    assert only_for(show, mod) and "Only moderators" in show.content
    assert "a quiet secret" not in show.content
    assert only_for(cancel, mod) and "Only the person who asked" in cancel.content
    job = await services.storage.jobs.get(job_id)
    assert job is not None and not job.state.is_terminal


async def test_a_member_cannot_cancel_someone_elses_video(
    bot, fake_discord: FakeDiscord, bob: FakeMember, services
):
    alice = fake_discord.world.member_named("alice")
    record = await video(fake_discord, alice, {"prompt": "alice's own clip"})
    progress = answer(fake_discord, record)
    note = await press(fake_discord, progress, button(progress, "vjob:cancel:"), bob)
    assert only_for(note, bob) and "Only the person who asked" in note.content
    assert title(fake_discord.message(record.original_message_id)) == MAKING


async def test_a_moderators_cancel_tells_the_requester_and_leaves_their_limit_unused(
    bot, fake_discord: FakeDiscord, services, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    await videolimit(fake_discord, "set", {"user": alice, "count": 1, "period": "1d"}, mod)
    first = await video(fake_discord, alice, {"prompt": "the only clip today"})
    await wait_for_status(fake_discord, first.original_message_id, "Queued at Segmind")
    job_id = job_id_of(fake_discord, first)
    shown = await videoqueue(fake_discord, mod, {"scope": "server"})

    note = await press(fake_discord, shown, button(shown, f"vjob:cancel:{job_id}:"), mod)

    assert only_for(note, mod)
    assert f"Cancelled <@{alice.id}>'s video" in note.content
    assert "does not count toward their limit" in note.content
    told = await wait_for_title(fake_discord, first.original_message_id, CANCELLED)
    assert field(told, "Cancelled by") == f"<@{mod.id}>"
    assert "does not count toward your limit" in (field(told, "Cost") or "")
    assert field(told, "Why") == "A moderator cancelled this video."  # the count said once
    assert told.pinged_user_ids == frozenset()
    # Segmind had accepted it: the server's spending still counts it.
    assert [s["prompt"] for s in simulator.submits] == ["the only clip today"]
    budget = await services.limits.budget_status(fake_discord.world.guild.id)
    assert budget.clips_today == 1

    again = await video(fake_discord, alice, {"prompt": "another try today"})
    await fake_discord.wait_until(lambda: title(answer(fake_discord, again)) == MAKING, TIMEOUT)
    mine = listing(await videoqueue(fake_discord, alice))
    assert "1 used in the last day, 0 left" in mine


async def test_a_long_listing_is_paged_five_to_a_page(bot, fake_discord: FakeDiscord, services):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    await videolimit(fake_discord, "set", {"user": alice, "count": 20, "period": "1d"}, mod)
    records = [await video(fake_discord, alice, {"prompt": f"clip number {n}"}) for n in range(7)]
    ids = [job_id_of(fake_discord, r) for r in records]

    shown = await videoqueue(fake_discord, alice)

    assert shown.embeds[0]["footer"]["text"] == "Page 1 of 2"
    first_page = {int(c.split(":")[2]) for c in shown.custom_ids() if c.startswith("vjob:cancel:")}
    assert len(first_page) == 5 and first_page < set(ids)
    await fake_discord.dispatch_component(shown, button(shown, "vqueue:page:mine:2"), user=alice)
    await fake_discord.wait_until(
        lambda: shown.embeds[0].get("footer", {}).get("text") == "Page 2 of 2", TIMEOUT
    )
    second_page = {int(c.split(":")[2]) for c in shown.custom_ids() if c.startswith("vjob:cancel:")}
    assert second_page == set(ids) - first_page
    assert "clip number 6" in listing(shown)
    assert only_for(shown, alice)


async def test_videoqueue_is_offered_to_everyone_with_the_contracts_scope_choices(
    bot, fake_discord: FakeDiscord
):
    commands = fake_discord.commands(fake_discord.world.guild.id)
    [command] = [c for c in commands if c["name"] == "videoqueue"]
    assert command.get("default_member_permissions") is None  # members use it too
    [scope] = command["options"]
    assert scope["name"] == "scope" and not scope.get("required")
    assert [choice["value"] for choice in scope["choices"]] == ["mine", "server"]
