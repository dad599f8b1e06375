"""Interaction rules a video bot trips over, proven with the real discord.py against the fake."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import discord
import pytest

from tests.fakediscord import FakeDiscord, Fault, running_client
from tests.fakediscord.botkit import make_bot, on_command, resolved, sync_to_guild

CLIP = b"\x00\x00\x00\x18ftypmp42" + bytes(range(200))


def general(fake: FakeDiscord) -> Any:
    return fake.world.guild.channels[0]


def alice(fake: FakeDiscord) -> Any:
    return fake.world.member_named("alice")


async def run_command(fake: FakeDiscord, name: str, body: Any, **dispatch: Any) -> Any:
    """Run a bot with one command, invoke it as alice, and wait for `body` to finish."""
    bot = make_bot()
    finished: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def callback(interaction: discord.Interaction) -> None:
        try:
            finished.set_result(await body(interaction))
        except discord.DiscordException as exc:  # the test asserts on what discord.py raised
            finished.set_result(exc)

    on_command(bot, fake, name, callback)
    async with running_client(bot, fake):
        await sync_to_guild(bot, fake)
        await fake.dispatch_slash_command(name, user=alice(fake), **dispatch)
        return await resolved(finished)


async def test_after_a_public_defer_the_first_followup_stays_public(fake_discord: FakeDiscord):
    async def refuse(interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        await interaction.followup.send("you are over your limit", ephemeral=True)
        await interaction.followup.send("second followups may be ephemeral", ephemeral=True)

    await run_command(fake_discord, "refuse", refuse)
    everyone_sees = fake_discord.channel_messages(general(fake_discord))
    assert [m.content for m in everyone_sees] == ["you are over your limit"]
    only_alice = fake_discord.channel_messages(general(fake_discord), viewer=alice(fake_discord))
    assert [m.content for m in only_alice][-1] == "second followups may be ephemeral"


async def test_after_an_ephemeral_defer_the_first_followup_stays_ephemeral(
    fake_discord: FakeDiscord,
):
    async def private(interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True)
        await interaction.followup.send("meant for everyone")

    await run_command(fake_discord, "private", private)
    assert fake_discord.channel_messages(general(fake_discord)) == []
    [message] = fake_discord.all_channel_messages(general(fake_discord))
    assert message.ephemeral and message.content == "meant for everyone"


async def test_reply_with_a_file_uses_multipart_on_the_callback(fake_discord: FakeDiscord):
    async def clip(interaction: discord.Interaction) -> int:
        await interaction.response.send_message(
            "clip", file=discord.File(io.BytesIO(CLIP), "clip.mp4")
        )
        message = await interaction.original_response()
        return message.attachments[0].size

    assert await run_command(fake_discord, "clip", clip) == len(CLIP)
    callback = fake_discord.calls_to("POST /interactions/*/*/callback")[0]
    assert callback.json["type"] == 4 and callback.files[0].data == CLIP
    [message] = fake_discord.channel_messages(general(fake_discord))
    assert message.attachments[0].data == CLIP
    assert message.attachments[0].content_type == "video/mp4"


async def test_interaction_upload_limit_is_the_invokers_not_the_guilds(fake_discord: FakeDiscord):
    async def too_big(interaction: discord.Interaction) -> Any:
        await interaction.response.defer()
        await interaction.followup.send(file=discord.File(io.BytesIO(b"x" * 3000), "c.mp4"))

    error = await run_command(fake_discord, "big", too_big, attachment_size_limit=2048)
    assert isinstance(error, discord.HTTPException)
    assert (error.status, error.code) == (413, 40005)


async def test_followup_before_acknowledging_is_unknown_webhook(fake_discord: FakeDiscord):
    async def premature(interaction: discord.Interaction) -> None:
        await interaction.followup.send("too early")

    error = await run_command(fake_discord, "premature", premature)
    assert isinstance(error, discord.NotFound) and error.code == 10015


async def test_injected_fault_on_followups_surfaces_as_forbidden(fake_discord: FakeDiscord):
    fake_discord.inject(Fault.missing_permissions("POST /webhooks/{application_id}/{token}"))

    async def blocked(interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        await interaction.followup.send("nope")

    error = await run_command(fake_discord, "blocked", blocked)
    assert isinstance(error, discord.Forbidden) and error.code == 50013


async def test_server_errors_surface_when_discord_py_does_not_retry_them(fake_discord: FakeDiscord):
    # discord.py retries 500/502/504/524 after 1 s, 3 s, ...; 503 surfaces at once.
    fake_discord.inject(Fault.server_error("POST /channels/*/messages", status=503))
    bot = make_bot()
    async with running_client(bot, fake_discord):
        with pytest.raises(discord.DiscordServerError):
            await bot.get_channel(general(fake_discord).id).send("hello")


async def test_modal_round_trip(fake_discord: FakeDiscord):
    bot = make_bot()
    submitted: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    class Prompt(discord.ui.Modal, title="New video"):
        prompt = discord.ui.TextInput(label="Prompt", custom_id="prompt")

        async def on_submit(self, interaction: discord.Interaction) -> None:
            await interaction.response.send_message("queued", ephemeral=True)
            submitted.set_result(self.prompt.value)

    async def ask(interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(Prompt())

    on_command(bot, fake_discord, "ask", ask)
    async with running_client(bot, fake_discord):
        await sync_to_guild(bot, fake_discord)
        opener = await fake_discord.dispatch_slash_command("ask", user=alice(fake_discord))
        await fake_discord.wait_until(lambda: opener.modal)
        submit = await fake_discord.dispatch_modal_submit(opener, {"prompt": "a red fox"})
        assert await resolved(submitted) == "a red fox"
        await fake_discord.wait_for_ack(submit)
    assert opener.response_type == 9 and submit.response_type == 4


async def test_a_modal_input_over_discords_limits_is_refused(fake_discord: FakeDiscord):
    class TooLong(discord.ui.Modal, title="Remix"):
        prompt = discord.ui.TextInput(label="L" * 46, custom_id="prompt", default="a fox")
        seed = discord.ui.TextInput(label="Seed", custom_id="seed", default="12345", max_length=4)

    async def ask(interaction: discord.Interaction) -> Any:
        await interaction.response.send_modal(TooLong())

    error = await run_command(fake_discord, "ask", ask)
    assert isinstance(error, discord.HTTPException) and error.code == 50035
    assert "components.0.components.0.label" in str(error)
    assert "components.1.components.0.value" in str(error)


async def test_a_modal_input_left_alone_is_submitted_with_its_prefilled_value(
    fake_discord: FakeDiscord,
):
    bot = make_bot()
    submitted: asyncio.Future[tuple[str, str]] = asyncio.get_running_loop().create_future()

    class Remix(discord.ui.Modal, title="Remix"):
        prompt = discord.ui.TextInput(label="Prompt", custom_id="prompt", default="a red fox")
        seed = discord.ui.TextInput(label="Seed", custom_id="seed", default="7", required=False)

        async def on_submit(self, interaction: discord.Interaction) -> None:
            await interaction.response.send_message("queued", ephemeral=True)
            submitted.set_result((self.prompt.value, self.seed.value))

    async def ask(interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(Remix())

    on_command(bot, fake_discord, "ask", ask)
    async with running_client(bot, fake_discord):
        await sync_to_guild(bot, fake_discord)
        opener = await fake_discord.dispatch_slash_command("ask", user=alice(fake_discord))
        await fake_discord.wait_until(lambda: opener.modal)
        await fake_discord.dispatch_modal_submit(opener, {"seed": ""})
        assert await resolved(submitted) == ("a red fox", "")


async def test_direct_messages_respect_the_users_settings(fake_discord: FakeDiscord):
    bot = make_bot()
    mod = fake_discord.world.member_named("mod")
    mod.user.accepts_dms = False
    async with running_client(bot, fake_discord):
        await (await bot.fetch_user(alice(fake_discord).id)).send("your clip is ready")
        with pytest.raises(discord.Forbidden) as closed:
            await (await bot.fetch_user(mod.id)).send("hello")
    assert [m.content for m in fake_discord.dm_messages(alice(fake_discord))] == [
        "your clip is ready"
    ]
    assert closed.value.code == 50007


async def test_followup_edits_by_id_and_deferred_update_on_a_click(fake_discord: FakeDiscord):
    bot = make_bot()
    clicked: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    class Cancel(discord.ui.View):
        @discord.ui.button(label="Cancel", custom_id="cancel:7")
        async def cancel(self, interaction: discord.Interaction, _: discord.ui.Button) -> None:
            await interaction.response.defer()  # type 6: no visible change yet
            await interaction.edit_original_response(content="cancelled", view=None)
            clicked.set_result(None)

    async def start(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("starting")
        progress = await interaction.followup.send("queue position 2", view=Cancel(), wait=True)
        await progress.edit(content="queue position 1")

    on_command(bot, fake_discord, "start", start)
    async with running_client(bot, fake_discord):
        await sync_to_guild(bot, fake_discord)
        await fake_discord.dispatch_slash_command("start", user=alice(fake_discord))
        progress = await fake_discord.wait_for_message(
            general(fake_discord), lambda m: m.content == "queue position 1"
        )
        click = await fake_discord.dispatch_component(
            progress, "cancel:7", user=alice(fake_discord)
        )
        await resolved(clicked)
    assert click.response_type == 6 and click.original_message_id == progress.id
    assert progress.content == "cancelled" and progress.components == []
    assert [r.content for r in progress.revisions] == [
        "queue position 2",
        "queue position 1",
        "cancelled",
    ]
    assert len(fake_discord.calls_to("PATCH /webhooks/*/*/messages/{message_id}")) == 2
