"""Every button acts only on its own job: not from another database, not from another message.

Job row ids restart at 1 with a new database, so a button's custom id alone does not say
which clip it belongs to; it is signed with the database's secret and checked against
the message it was clicked on.
"""

from __future__ import annotations

from pathlib import Path

from services.simulator import SegmindSimulator
from tests.bot.helpers import (
    click,
    has_button,
    running_bot,
    video,
    wait_for_clip,
    wait_for_reply,
)
from tests.fakediscord import FakeDiscord, FakeMember, StoredMessage


async def clip_for(fake: FakeDiscord, member: FakeMember, prompt: str, **options) -> StoredMessage:
    record = await video(fake, member, {"prompt": prompt, **options})
    return await wait_for_clip(fake, record.channel_id, viewer=member)


def job_id_of(message: StoredMessage, action: str) -> int:
    custom_id = has_button(message, action)
    assert custom_id is not None
    return int(custom_id.split(":")[2])


async def test_after_a_database_reset_an_old_delete_button_deletes_nothing(
    fake_discord: FakeDiscord, bot_env, simulator: SegmindSimulator, tmp_path: Path
):
    alice = fake_discord.world.member_named("alice")
    bob = fake_discord.world.guild.add_member("bob")
    async with running_bot(bot_env, simulator, fake_discord):
        alices = await clip_for(fake_discord, alice, "alice's lighthouse")

    fresh = {**bot_env, "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh' / 'bot.db'}"}
    async with running_bot(fresh, simulator, fake_discord):
        bobs = await clip_for(fake_discord, bob, "bob's boat")
        # The new database numbers bob's job as alice's was: the ids alone collide.
        assert job_id_of(bobs, "delete") == job_id_of(alices, "delete")

        record = await click(fake_discord, alices, "delete", bob)
        refusal = await wait_for_reply(fake_discord, record, lambda m: "no longer" in m.content)

    assert refusal.ephemeral and refusal.visible_to == {bob.id}
    assert not alices.deleted and not bobs.deleted


async def test_a_shared_private_clip_is_re_rolled_by_its_requester_only(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    bob = fake_discord.world.guild.add_member("bob")
    private = await clip_for(fake_discord, alice, "a diary entry", private=True)
    share = await click(fake_discord, private, "share", alice)
    shared = await wait_for_reply(fake_discord, share, lambda m: bool(m.attachments))

    record = await click(fake_discord, shared, "reroll", bob)
    refusal = await wait_for_reply(fake_discord, record, lambda m: "re-roll" in m.content)

    assert refusal.ephemeral and refusal.visible_to == {bob.id}
    assert len(simulator.submits) == 1  # nothing was made, or billed, for bob


async def test_a_private_clip_is_shared_once_even_across_a_restart(
    fake_discord: FakeDiscord, bot_env, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    async with running_bot(bot_env, simulator, fake_discord):
        private = await clip_for(fake_discord, alice, "a secret garden", private=True)
        share = await click(fake_discord, private, "share", alice)
        shared = await wait_for_reply(fake_discord, share, lambda m: bool(m.attachments))

    async with running_bot(bot_env, simulator, fake_discord):
        again = await click(fake_discord, private, "share", alice)
        refusal = await wait_for_reply(fake_discord, again, lambda m: "already" in m.content)

    assert refusal.ephemeral
    public = fake_discord.channel_messages(shared.channel_id)
    assert [m.id for m in public if m.attachments] == [shared.id]


async def test_the_shared_post_keeps_working_buttons_after_a_restart(
    fake_discord: FakeDiscord, bot_env, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    async with running_bot(bot_env, simulator, fake_discord):
        private = await clip_for(fake_discord, alice, "a paper crane", private=True)
        share = await click(fake_discord, private, "share", alice)
        shared = await wait_for_reply(fake_discord, share, lambda m: bool(m.attachments))

    async with running_bot(bot_env, simulator, fake_discord):
        await click(fake_discord, shared, "delete", alice)
        await fake_discord.wait_until(lambda: shared.deleted)
