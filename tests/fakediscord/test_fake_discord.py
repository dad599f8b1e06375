"""Self-tests: the real discord.py, unmodified, talks to FakeDiscord and sees Discord's rules.

Each test builds a tiny `commands.Bot` inline, runs it with `running_client`, drives it through
the fake and asserts on what the fake recorded. No fixed sleeps: waits are on fake state changes.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import discord
import pytest
from discord import app_commands

from tests.fakediscord import (
    AcknowledgementMissed,
    FakeDiscord,
    Fault,
    InvalidInteraction,
    Perm,
    running_client,
)
from tests.fakediscord.botkit import guild_object, make_bot, on_command, resolved, sync_to_guild

CLIP = bytes(range(256)) * 64 + b"\x00\xff end of clip"


def text_channel(fake: FakeDiscord) -> Any:
    return fake.world.guild.channels[0]


def alice(fake: FakeDiscord) -> Any:
    return fake.world.member_named("alice")


# Connecting ---------------------------------------------------------------------------------


async def test_bot_logs_in_and_caches_guild_and_channel(fake_discord: FakeDiscord):
    bot = make_bot()
    async with running_client(bot, fake_discord):
        guild = bot.get_guild(fake_discord.world.guild.id)
        assert guild is not None and guild.name == "Test Guild"
        assert isinstance(guild.get_channel(text_channel(fake_discord).id), discord.TextChannel)
        assert guild.me.guild_permissions.attach_files
        assert bot.application_id == fake_discord.world.application_id
    assert fake_discord.gateway.identify_payloads[0]["intents"] == bot.intents.value
    assert [c.route for c in fake_discord.calls[:2]] == ["/users/@me", "/oauth2/applications/@me"]


async def test_privileged_intent_not_enabled_is_refused_with_4014(fake_discord: FakeDiscord):
    fake_discord.world.application_flags = 0  # the operator never enabled Server Members Intent
    bot = make_bot(discord.Intents(guilds=True, members=True))
    with pytest.raises(discord.ConnectionClosed) as refused:
        async with running_client(bot, fake_discord):
            pass
    assert refused.value.code == 4014


# Command sync -------------------------------------------------------------------------------


async def test_sync_records_the_schema_discord_stores(fake_discord: FakeDiscord):
    bot = make_bot()

    @bot.tree.command(description="Make a video from a prompt", guild=guild_object(fake_discord))
    @app_commands.describe(prompt="What to film")
    async def video(
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, 2000],
        steps: app_commands.Range[int, 25, 50] = 45,
    ) -> None:
        await interaction.response.send_message("ok")

    async with running_client(bot, fake_discord):
        synced_commands = await bot.tree.sync(guild=guild_object(fake_discord))
    call = fake_discord.calls_to("PUT /applications/*/guilds/*/commands")[0]
    assert call.status == 200
    sent = call.json[0]
    assert sent["name"] == "video"
    assert [(o["name"], o["required"]) for o in sent["options"]] == [
        ("prompt", True),
        ("steps", False),
    ]
    assert sent["options"][0]["max_length"] == 2000
    stored = fake_discord.commands(fake_discord.world.guild.id)
    assert [c["name"] for c in stored] == ["video"]
    assert synced_commands[0].id == int(stored[0]["id"])


async def test_fetch_commands_returns_what_the_last_sync_stored_per_scope(
    fake_discord: FakeDiscord,
):
    bot = make_bot()

    @bot.tree.command(description="Make a video", guild=guild_object(fake_discord))
    async def video(interaction: discord.Interaction, prompt: str) -> None:
        raise AssertionError("never invoked")

    async with running_client(bot, fake_discord):
        before = await bot.tree.fetch_commands(guild=guild_object(fake_discord))
        await sync_to_guild(bot, fake_discord)
        in_guild = await bot.tree.fetch_commands(guild=guild_object(fake_discord))
        global_ = await bot.tree.fetch_commands()
        with pytest.raises(discord.Forbidden) as elsewhere:
            await bot.tree.fetch_commands(guild=discord.Object(id=1))
    assert before == [] and global_ == []
    assert [(c.name, c.description) for c in in_guild] == [("video", "Make a video")]
    assert in_guild[0].options[0].name == "prompt" and in_guild[0].options[0].required
    assert elsewhere.value.code == 50001  # the bot is not in that server


async def test_invalid_schema_is_refused_with_400_50035(fake_discord: FakeDiscord):
    bot = make_bot()

    # discord.py shortens docstrings to 100 characters, but not an explicit description.
    @bot.tree.command(description="Make a video " + "x" * 100, guild=guild_object(fake_discord))
    async def video(interaction: discord.Interaction, prompt: str) -> None:
        raise AssertionError("never invoked")

    async with running_client(bot, fake_discord):
        with pytest.raises(app_commands.CommandSyncFailure) as failure:
            await sync_to_guild(bot, fake_discord)
        # A raw payload discord.py would never build: required after optional.
        raw = [
            {
                "name": "Bad Name",
                "description": "d",
                "type": 1,
                "options": [
                    {"type": 3, "name": "a", "description": "a", "required": False},
                    {"type": 3, "name": "b", "description": "b", "required": True},
                ],
            }
        ]
        with pytest.raises(discord.HTTPException) as raw_failure:
            await bot.http.bulk_upsert_guild_commands(
                bot.application_id, fake_discord.world.guild.id, payload=raw
            )
    assert failure.value.status == 400 and failure.value.code == 50035
    errors = fake_discord.calls_to("PUT /applications/**")[0].response["errors"]
    assert errors["0"]["description"]["_errors"][0]["code"] == "BASE_TYPE_BAD_LENGTH"
    assert raw_failure.value.code == 50035
    raw_errors = fake_discord.calls_to("PUT /applications/**")[1].response["errors"]["0"]
    assert "name" in raw_errors and "required" in raw_errors["options"]["1"]
    assert fake_discord.commands(fake_discord.world.guild.id) == []


# Interactions -------------------------------------------------------------------------------


async def test_deferred_followup_file_replaces_thinking_with_exact_bytes(fake_discord: FakeDiscord):
    bot = make_bot()

    async def render(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.followup.send(
            "here it is", file=discord.File(io.BytesIO(CLIP), "clip.mp4")
        )

    on_command(bot, fake_discord, "render", render)
    async with running_client(bot, fake_discord):
        await sync_to_guild(bot, fake_discord)
        record = await fake_discord.dispatch_slash_command("render", user=alice(fake_discord))
        await fake_discord.wait_for_ack(record)
        upload = await fake_discord.wait_for_call("POST /webhooks/*/*")
    assert record.response_type == 5 and record.ack_latency is not None
    assert record.ack_latency < 3
    assert upload.files[0].data == CLIP and upload.files[0].filename == "clip.mp4"
    [shown] = fake_discord.channel_messages(text_channel(fake_discord))
    assert shown.id == record.original_message_id  # the followup resolved "thinking"
    assert not shown.loading and shown.content == "here it is"
    assert shown.attachments[0].data == CLIP
    assert shown.pinged_user_ids == frozenset()


async def test_ephemeral_reply_is_seen_only_by_the_invoker(fake_discord: FakeDiscord):
    bot = make_bot()

    async def secret(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("only you", ephemeral=True)

    on_command(bot, fake_discord, "secret", secret)
    async with running_client(bot, fake_discord):
        await sync_to_guild(bot, fake_discord)
        await fake_discord.dispatch_slash_command("secret", user=alice(fake_discord))
        reply = await fake_discord.wait_for_message(
            text_channel(fake_discord), viewer=alice(fake_discord)
        )
    assert reply.ephemeral and reply.visible_to == {alice(fake_discord).id}
    assert fake_discord.channel_messages(text_channel(fake_discord)) == []
    moderator = fake_discord.world.member_named("mod")
    assert fake_discord.channel_messages(text_channel(fake_discord), viewer=moderator) == []


async def test_edit_original_response_changes_the_message_in_place(fake_discord: FakeDiscord):
    bot = make_bot()
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def progress(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("queued")
        await interaction.edit_original_response(content="rendering 50%")
        done.set_result(None)

    on_command(bot, fake_discord, "progress", progress)
    async with running_client(bot, fake_discord):
        await sync_to_guild(bot, fake_discord)
        record = await fake_discord.dispatch_slash_command("progress", user=alice(fake_discord))
        await resolved(done)
    message = fake_discord.message(record.original_message_id)
    assert message.content == "rendering 50%"
    assert [r.content for r in message.revisions] == ["queued", "rendering 50%"]
    assert fake_discord.calls_to("PATCH /webhooks/*/*/messages/@original")[0].status == 200


async def test_component_click_reaches_the_view_and_updates_the_message(fake_discord: FakeDiscord):
    bot = make_bot()
    clicked: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    class Reroll(discord.ui.View):
        @discord.ui.button(label="Re-roll", custom_id="reroll:42")
        async def reroll(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
            await interaction.response.edit_message(content="re-rolling", view=None)
            clicked.set_result(interaction.user.name)

    async def show(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("clip", view=Reroll())

    on_command(bot, fake_discord, "show", show)
    async with running_client(bot, fake_discord):
        await sync_to_guild(bot, fake_discord)
        await fake_discord.dispatch_slash_command("show", user=alice(fake_discord))
        message = await fake_discord.wait_for_message(
            text_channel(fake_discord), lambda m: "reroll:42" in m.custom_ids()
        )
        click = await fake_discord.dispatch_component(
            message, "reroll:42", user=alice(fake_discord)
        )
        assert await resolved(clicked) == "alice"
        await fake_discord.wait_for_ack(click)
        with pytest.raises(InvalidInteraction):  # the button is gone now
            await fake_discord.dispatch_component(message, "reroll:42", user=alice(fake_discord))
    assert click.response_type == 7
    assert message.content == "re-rolling" and message.components == []


async def test_subcommand_group_with_user_and_role_options_resolves_members(
    fake_discord: FakeDiscord,
):
    bot = make_bot()
    got: asyncio.Future[tuple[Any, Any, int]] = asyncio.get_running_loop().create_future()
    limits = app_commands.Group(
        name="videolimit",
        description="Limits",
        default_permissions=discord.Permissions(manage_guild=True),
    )
    per = app_commands.Group(name="per", description="Per target", parent=limits)

    @per.command(name="role", description="Limit a role")
    async def per_role(
        interaction: discord.Interaction,
        role: discord.Role,
        member: discord.Member,
        count: app_commands.Range[int, 0],
    ) -> None:
        got.set_result((role, member, count))
        await interaction.response.send_message("saved", ephemeral=True)

    bot.tree.add_command(limits, guild=guild_object(fake_discord))
    moderator = fake_discord.world.member_named("mod")
    role = fake_discord.world.guild.roles[2]
    async with running_client(bot, fake_discord):
        await sync_to_guild(bot, fake_discord)
        with pytest.raises(InvalidInteraction):  # hidden from members without Manage Server
            await fake_discord.dispatch_slash_command(
                "videolimit per role",
                {"role": role, "member": alice(fake_discord), "count": 1},
                user=alice(fake_discord),
            )
        with pytest.raises(InvalidInteraction):  # Discord's client enforces min_value
            await fake_discord.dispatch_slash_command(
                "videolimit per role",
                {"role": role, "member": alice(fake_discord), "count": -1},
                user=moderator,
            )
        record = await fake_discord.dispatch_slash_command(
            "videolimit per role",
            {"role": role, "member": alice(fake_discord), "count": 3},
            user=moderator,
        )
        got_role, got_member, count = await resolved(got)
    assert isinstance(got_role, discord.Role) and got_role.id == role.id
    assert isinstance(got_member, discord.Member) and got_member.id == alice(fake_discord).id
    assert count == 3
    options = record.payload["data"]["options"][0]
    assert options["type"] == 2 and options["options"][0]["type"] == 1
    assert str(alice(fake_discord).id) in record.payload["data"]["resolved"]["members"]


# Failures discord.py must surface -----------------------------------------------------------


async def test_rate_limited_channel_send_is_retried_by_discord_py(fake_discord: FakeDiscord):
    fault = fake_discord.inject(
        Fault.rate_limited("POST /channels/{channel_id}/messages", retry_after=0.05)
    )
    bot = make_bot()
    async with running_client(bot, fake_discord):
        channel = bot.get_channel(text_channel(fake_discord).id)
        sent = await channel.send("clip ready")
    first, second = fake_discord.calls_to("POST /channels/*/messages")
    assert (first.status, second.status) == (429, 200) and fault.hits == 1
    assert first.response == {
        "message": "You are being rate limited.",
        "retry_after": 0.05,
        "global": False,
    }
    assert second.at - first.at >= 0.05
    assert [m.id for m in fake_discord.channel_messages(text_channel(fake_discord))] == [sent.id]


async def test_expired_interaction_token_surfaces_as_http_exception_50027(
    fake_discord: FakeDiscord,
):
    bot = make_bot()
    release = asyncio.Event()
    outcome: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def slow(interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        await release.wait()
        try:
            await interaction.followup.send("too late")
        except discord.HTTPException as exc:
            outcome.set_result(exc)

    on_command(bot, fake_discord, "slow", slow)
    async with running_client(bot, fake_discord):
        await sync_to_guild(bot, fake_discord)
        record = await fake_discord.dispatch_slash_command("slow", user=alice(fake_discord))
        await fake_discord.wait_for_ack(record)
        fake_discord.advance(15 * 60 + 1)
        release.set()
        error = await resolved(outcome)
    assert isinstance(error, discord.HTTPException)
    assert (error.status, error.code) == (401, 50027)
    assert fake_discord.message(record.original_message_id).loading  # still "thinking..."


async def test_missed_three_second_window_is_detected(fake_discord: FakeDiscord):
    bot = make_bot()
    release = asyncio.Event()
    outcome: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def sluggish(interaction: discord.Interaction) -> None:
        await release.wait()
        try:
            await interaction.response.send_message("finally")
        except discord.NotFound as exc:
            outcome.set_result(exc)

    on_command(bot, fake_discord, "sluggish", sluggish)
    async with running_client(bot, fake_discord):
        await sync_to_guild(bot, fake_discord)
        record = await fake_discord.dispatch_slash_command("sluggish", user=alice(fake_discord))
        fake_discord.advance(3.1)
        with pytest.raises(AcknowledgementMissed):
            await fake_discord.wait_for_ack(record, timeout=0)
        release.set()
        error = await resolved(outcome)
    assert error.code == 10062
    assert fake_discord.unanswered_interactions() == [record]
    assert fake_discord.channel_messages(text_channel(fake_discord)) == []


async def test_second_initial_response_is_refused_with_40060(fake_discord: FakeDiscord):
    bot = make_bot()
    outcome: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def twice(interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        adapter = discord.webhook.async_.async_context.get()
        params = discord.webhook.async_.interaction_response_params(type=5)
        try:  # bypass discord.py's own InteractionResponded guard to reach the API
            await adapter.create_interaction_response(
                interaction.id, interaction.token, session=interaction._session, params=params
            )
        except discord.HTTPException as exc:
            outcome.set_result(exc)

    on_command(bot, fake_discord, "twice", twice)
    async with running_client(bot, fake_discord):
        await sync_to_guild(bot, fake_discord)
        await fake_discord.dispatch_slash_command("twice", user=alice(fake_discord))
        error = await resolved(outcome)
    assert (error.status, error.code) == (400, 40060)


async def test_upload_over_the_limit_is_413_40005(fake_discord: FakeDiscord):
    fake_discord.world.upload_limit = 4096
    bot = make_bot()
    async with running_client(bot, fake_discord):
        channel = bot.get_channel(text_channel(fake_discord).id)
        with pytest.raises(discord.HTTPException) as too_big:
            await channel.send(file=discord.File(io.BytesIO(b"x" * 4097), "big.mp4"))
        await channel.send(file=discord.File(io.BytesIO(b"x" * 4096), "fits.mp4"))
    assert (too_big.value.status, too_big.value.code) == (413, 40005)
    shown = fake_discord.channel_messages(text_channel(fake_discord))
    assert [m.attachments[0].filename for m in shown] == ["fits.mp4"]


async def test_message_rules_content_length_and_deleted_message(fake_discord: FakeDiscord):
    bot = make_bot()
    async with running_client(bot, fake_discord):
        channel = bot.get_channel(text_channel(fake_discord).id)
        with pytest.raises(discord.HTTPException) as too_long:
            await channel.send("x" * 2001)
        message = await channel.send("temporary")
        await message.delete()
        with pytest.raises(discord.NotFound) as gone:
            await message.edit(content="edited")
    assert (too_long.value.status, too_long.value.code) == (400, 50035)
    assert "content" in too_long.value.text or too_long.value.code == 50035
    assert gone.value.code == 10008


async def test_missing_permissions_and_access_come_from_channel_overwrites(
    fake_discord: FakeDiscord,
):
    world = fake_discord.world
    channel = text_channel(fake_discord)
    bot = make_bot()
    async with running_client(bot, fake_discord):
        channel.deny(world.guild.roles[1], Perm.SEND_MESSAGES)  # the bot's own role
        with pytest.raises(discord.Forbidden) as no_send:
            await bot.get_channel(channel.id).send("hi")
        channel.deny(world.guild.everyone_role, Perm.VIEW_CHANNEL)
        with pytest.raises(discord.Forbidden) as no_access:
            await bot.get_channel(channel.id).send("hi")
    assert no_access.value.code == 50001 and no_send.value.code == 50013


# Mentions -----------------------------------------------------------------------------------


async def test_allowed_mentions_none_pings_nobody(fake_discord: FakeDiscord):
    role = fake_discord.world.guild.add_role("Everyone Pingable", mentionable=True)
    bot = make_bot()  # AllowedMentions.none() on the bot
    async with running_client(bot, fake_discord):
        channel = bot.get_channel(text_channel(fake_discord).id)
        await channel.send(f"@everyone <@&123> {role.mention} {alice(fake_discord).mention}")
    [message] = fake_discord.channel_messages(text_channel(fake_discord))
    assert message.allowed_mentions == {"parse": []}
    assert message.pinged_user_ids == frozenset() and not message.mentions.everyone
    assert fake_discord.pinged() == {}


async def test_only_the_requester_is_pinged_when_allowed_explicitly(fake_discord: FakeDiscord):
    requester = alice(fake_discord)
    pingable = fake_discord.world.guild.add_role("Pingable", mentionable=True)
    fake_discord.world.guild.member(requester.id).roles.append(pingable.id)
    bot = make_bot()
    async with running_client(bot, fake_discord):
        channel = bot.get_channel(text_channel(fake_discord).id)
        await channel.send(
            f"{requester.mention} your clip, prompted by someone writing "
            f"@everyone {pingable.mention} <@{fake_discord.world.owner.id}>",
            allowed_mentions=discord.AllowedMentions(users=[discord.Object(requester.id)]),
        )
    [message] = fake_discord.channel_messages(text_channel(fake_discord))
    assert message.pinged_user_ids == {requester.id}


async def test_without_allowed_mentions_everything_parsed_pings(fake_discord: FakeDiscord):
    bot = make_bot(allowed_mentions=None)
    pingable = fake_discord.world.guild.add_role("Pingable", mentionable=True)
    fake_discord.world.member_named("mod").roles.append(pingable.id)
    async with running_client(bot, fake_discord):
        await bot.get_channel(text_channel(fake_discord).id).send(
            f"{alice(fake_discord).mention} {pingable.mention} @everyone"
        )
    [message] = fake_discord.channel_messages(text_channel(fake_discord))
    assert message.allowed_mentions is None
    # @everyone needs MENTION_EVERYONE, which the bot's role does not have.
    assert not message.mentions.everyone
    assert message.pinged_user_ids == {
        alice(fake_discord).id,
        fake_discord.world.member_named("mod").id,
    }


async def test_first_followup_after_defer_is_an_edit_and_does_not_ping(fake_discord: FakeDiscord):
    bot = make_bot()
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def deliver(interaction: discord.Interaction) -> None:
        ping = discord.AllowedMentions(users=[interaction.user])
        await interaction.response.defer()
        await interaction.followup.send(f"{interaction.user.mention} done", allowed_mentions=ping)
        await interaction.followup.send(f"{interaction.user.mention} done", allowed_mentions=ping)
        done.set_result(None)

    on_command(bot, fake_discord, "deliver", deliver)
    async with running_client(bot, fake_discord):
        await sync_to_guild(bot, fake_discord)
        await fake_discord.dispatch_slash_command("deliver", user=alice(fake_discord))
        await resolved(done)
    first, second = fake_discord.channel_messages(text_channel(fake_discord))
    assert first.pinged_user_ids == frozenset()
    assert second.pinged_user_ids == {alice(fake_discord).id}


# Gateway ------------------------------------------------------------------------------------


async def test_client_shutdown_leaves_no_tasks_behind(fake_discord: FakeDiscord):
    bot = make_bot()
    async with running_client(bot, fake_discord):
        pass
    assert bot.is_closed()
    await fake_discord.stop()
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert pending == []


# Routes -------------------------------------------------------------------------------------


async def test_a_route_the_fake_does_not_model_fails_the_test(fake_discord: FakeDiscord):
    bot = make_bot()
    async with running_client(bot, fake_discord):
        with pytest.raises(discord.NotFound):
            await bot.fetch_channel(text_channel(fake_discord).id)
    [error] = fake_discord.internal_errors
    assert "GET /channels/" in str(error) and "not modelled" in str(error)
    fake_discord.internal_errors.clear()  # the fixture would fail the test on it
