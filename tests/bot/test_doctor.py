"""`bot.py doctor` against the fake Discord and the simulator: all well, and each trouble."""

from __future__ import annotations

import asyncio
import os
import sys
from functools import partial
from pathlib import Path

import discord
import pytest

from cogs import doctor as cogs_doctor
from cogs.doctor import canonical_command, check_discord, invite_url
from cogs.videobot import create_bot
from services.doctor import diagnose, exit_code, render
from tests.fakediscord import Perm, running_client
from tests.fakediscord.world import FakeOverwrite

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def doctor_env(bot_env, simulator) -> dict[str, str]:
    return {**bot_env, "SEGMIND_BASE_URL": simulator.base_url}


async def sync_commands_with_the_real_bot(fake, services) -> None:
    """What the bot does at its first start: sync its commands to the development server."""
    async with running_client(create_bot(services, guild_ready_timeout=0.05), fake):
        pass


async def run_doctor(env: dict[str, str], *, simulate: bool | None = None) -> tuple[int, str]:
    checks = await diagnose(
        env, simulate=simulate, discord_checks=partial(check_discord, guild_ready_timeout=0.05)
    )
    return exit_code(checks), render(checks)


def line(report: str, start: str) -> str:
    found = [text for text in report.splitlines() if text.startswith(start)]
    assert len(found) == 1, report
    return found[0]


def fix_under(report: str, start: str) -> str:
    lines = report.splitlines()
    index = lines.index(line(report, start))
    assert lines[index + 1].startswith("      fix: "), report
    return lines[index + 1].removeprefix("      fix: ")


async def test_all_well_exits_0_with_every_line_ok(fake_discord, services, doctor_env):
    await sync_commands_with_the_real_bot(fake_discord, services)
    code, report = await run_doctor(doctor_env)
    guild = fake_discord.world.guild
    assert code == 0, report
    assert line(report, "ok    Settings:")
    assert "schema current" in line(report, "ok    Database:")
    assert "logged in as videobot" in line(report, "ok    Discord token:")
    assert "in 1 channel" in line(report, f'ok    Server "Test Guild" ({guild.id}):')
    assert line(report, "ok    Commands:").endswith(
        f"/video, /videolimit, /videoqueue synced to server {guild.id}"
    )
    assert "accepted by http://127.0.0.1:" in line(report, "ok    Segmind key:")
    assert "FAIL" not in report and report.endswith("All is well.")


async def test_a_missing_permission_names_channel_permission_and_where_to_give_it(
    fake_discord, services, doctor_env
):
    await sync_commands_with_the_real_bot(fake_discord, services)
    guild = fake_discord.world.guild
    bot_role = next(role for role in guild.roles if role.managed)
    art = guild.add_text_channel("art")
    guild.channels[0].deny(bot_role, Perm.ATTACH_FILES)  # #general takes it away
    # A server that keeps links from @everyone, and a bot invited without Embed Links.
    guild.everyone_role.permissions &= ~Perm.EMBED_LINKS
    bot_role.permissions &= ~Perm.EMBED_LINKS
    staff = guild.add_text_channel("staff")  # hidden from everyone and the bot: not listed
    staff.deny(guild.everyone_role, Perm.VIEW_CHANNEL)
    staff.deny(bot_role, Perm.VIEW_CHANNEL)
    assert art.name == "art"

    code, report = await run_doctor(doctor_env)

    start = f'FAIL  Server "Test Guild" ({guild.id}):'
    assert code == 1
    assert line(report, start).endswith(
        "no Embed Links in #general, #art; no Attach Files in #general"
    )
    assert fix_under(report, start) == (
        "give the bot's role @videobot Embed Links in Server Settings > Roles; "
        "allow Attach Files for the bot's role @videobot in #general (Edit Channel > Permissions)"
    )
    assert "staff" not in report
    assert line(report, "ok    Commands:") and line(report, "ok    Segmind key:")
    assert report.endswith("1 problem: fix them, then run `python bot.py doctor` again.")


async def test_a_bad_segmind_key_is_refused_with_the_fix(fake_discord, services, doctor_env):
    await sync_commands_with_the_real_bot(fake_discord, services)
    code, report = await run_doctor({**doctor_env, "SEGMIND_API_KEY": "sg-not-the-right-key"})
    assert code == 1
    assert "(HTTP 401)" in line(report, "FAIL  Segmind key: refused by http://127.0.0.1:")
    assert "SEGMIND_API_KEY" in fix_under(report, "FAIL  Segmind key:")
    assert "sg-not-the-right-key" not in report


async def test_before_the_first_start_unsynced_commands_are_a_warning(fake_discord, doctor_env):
    code, report = await run_doctor(doctor_env)  # the bot never started, so never synced
    guild = fake_discord.world.guild
    assert code == 0, report
    assert line(report, "warn  Commands:").endswith(
        f"not synced to server {guild.id} yet: the bot syncs them at its first start"
    )


async def test_commands_gone_since_a_recorded_sync_say_to_run_sync(
    fake_discord, services, doctor_env
):
    await sync_commands_with_the_real_bot(fake_discord, services)
    guild = fake_discord.world.guild
    fake_discord.commands(guild.id).clear()
    code, report = await run_doctor(doctor_env)
    assert code == 1
    assert line(report, "FAIL  Commands:").endswith(
        f"not synced to server {guild.id}: Discord lacks /video, /videolimit, /videoqueue"
    )
    assert fix_under(report, "FAIL  Commands:").startswith("run `python bot.py sync`")


def test_a_min_length_of_0_is_the_same_as_none():
    stored = {"name": "video", "options": [{"name": "prompt", "type": 3, "min_length": 0}]}
    bare = {"name": "video", "options": [{"name": "prompt", "type": 3}]}
    assert canonical_command(stored) == canonical_command(bare)


async def test_read_only_channels_where_nobody_runs_commands_are_not_checked(
    fake_discord, services, doctor_env
):
    await sync_commands_with_the_real_bot(fake_discord, services)
    guild = fake_discord.world.guild
    for name in ("rules", "announcements"):
        channel = guild.add_text_channel(name)
        channel.deny(guild.everyone_role, Perm.SEND_MESSAGES | Perm.USE_APPLICATION_COMMANDS)
    code, report = await run_doctor(doctor_env)
    assert code == 0, report
    assert "in 1 channel" in line(report, f'ok    Server "Test Guild" ({guild.id}):')


async def test_a_role_gated_channel_the_bot_cannot_see_is_a_problem_named_by_its_cause(
    fake_discord, services, doctor_env
):
    await sync_commands_with_the_real_bot(fake_discord, services)
    guild = fake_discord.world.guild
    general = guild.channels[0]
    member = guild.add_role("Member")
    general.deny(guild.everyone_role, Perm.VIEW_CHANNEL)
    general.overwrites.append(FakeOverwrite(id=member.id, type=0, allow=int(Perm.VIEW_CHANNEL)))
    code, report = await run_doctor(doctor_env)
    assert code == 1
    assert line(report, f'FAIL  Server "Test Guild" ({guild.id}):').endswith(
        ": no View Channel in #general"
    )


async def test_without_send_messages_only_that_is_named_not_embeds_or_files(
    fake_discord, services, doctor_env
):
    await sync_commands_with_the_real_bot(fake_discord, services)
    guild = fake_discord.world.guild
    bot_role = next(role for role in guild.roles if role.managed)
    guild.channels[0].deny(bot_role, Perm.SEND_MESSAGES)
    _code, report = await run_doctor(doctor_env)
    assert line(report, f'FAIL  Server "Test Guild" ({guild.id}):').endswith(
        ": no Send Messages in #general"
    )


async def test_a_server_where_members_may_use_commands_nowhere_is_a_warning(
    fake_discord, services, doctor_env
):
    await sync_commands_with_the_real_bot(fake_discord, services)
    guild = fake_discord.world.guild
    guild.channels[0].deny(guild.everyone_role, Perm.USE_APPLICATION_COMMANDS)
    code, report = await run_doctor(doctor_env)
    assert code == 0, report
    assert "works nowhere" in line(report, f'warn  Server "Test Guild" ({guild.id}):')


async def test_a_deny_on_the_bot_member_says_to_remove_it(fake_discord, services, doctor_env):
    await sync_commands_with_the_real_bot(fake_discord, services)
    guild = fake_discord.world.guild
    me = guild.member(fake_discord.world.bot.id)
    guild.channels[0].deny(me, Perm.ATTACH_FILES)
    _code, report = await run_doctor(doctor_env)
    assert fix_under(report, f'FAIL  Server "Test Guild" ({guild.id}):') == (
        "remove the deny of Attach Files for the bot member (@videobot) in #general "
        "(Edit Channel > Permissions)"
    )


async def test_discord_answering_nothing_is_a_problem_after_the_timeout(
    fake_discord, doctor_env, monkeypatch
):
    async def hold(reader, writer):
        await asyncio.sleep(3600)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setattr(cogs_doctor, "REQUEST_TIMEOUT", 0.2)
    monkeypatch.setattr(discord.http.Route, "BASE", f"http://127.0.0.1:{port}/api/v10")
    try:
        code, report = await asyncio.wait_for(run_doctor(doctor_env), 10)
    finally:
        server.close()
    assert code == 1
    assert line(report, "FAIL  Discord token:").endswith(
        "Discord could not be reached to check it: TimeoutError"
    )


async def test_a_commands_list_that_never_comes_is_a_problem_not_a_hang(
    fake_discord, services, doctor_env, monkeypatch
):
    await sync_commands_with_the_real_bot(fake_discord, services)

    async def never(*args, **kwargs):
        await asyncio.sleep(3600)

    monkeypatch.setattr(cogs_doctor, "REQUEST_TIMEOUT", 0.2)
    monkeypatch.setattr(discord.http.HTTPClient, "get_guild_commands", never)
    _code, report = await asyncio.wait_for(run_doctor(doctor_env), 10)
    assert line(report, "FAIL  Commands:").endswith(
        "Discord did not list the commands: TimeoutError"
    )


async def test_a_control_character_in_the_token_is_a_line_not_a_traceback(fake_discord, doctor_env):
    code, report = await run_doctor({**doctor_env, "DISCORD_TOKEN": "abc\x01def"})
    assert code == 1
    assert line(report, "FAIL  Discord token:").endswith(
        "DISCORD_TOKEN contains an invisible character: paste it again"
    )


def test_the_invite_link_asks_for_sending_in_threads():
    client = discord.Client(intents=discord.Intents.none())
    url = invite_url(client)
    permissions = discord.Permissions(int(url.split("permissions=")[1].split("&")[0]))
    assert permissions.send_messages_in_threads


async def test_no_send_messages_in_threads_is_a_problem(fake_discord, services, doctor_env):
    await sync_commands_with_the_real_bot(fake_discord, services)
    guild = fake_discord.world.guild
    bot_role = next(role for role in guild.roles if role.managed)
    guild.channels[0].deny(bot_role, Perm.SEND_MESSAGES_IN_THREADS)
    guild.channels[0].deny(guild.everyone_role, Perm.SEND_MESSAGES_IN_THREADS)
    _code, report = await run_doctor(doctor_env)
    assert line(report, f'FAIL  Server "Test Guild" ({guild.id}):').endswith(
        ": no Send Messages in Threads in #general"
    )


async def test_a_command_changed_since_the_last_sync_is_found(fake_discord, services, doctor_env):
    await sync_commands_with_the_real_bot(fake_discord, services)
    guild_id = fake_discord.world.guild.id
    stored = fake_discord.commands(guild_id)
    video = next(command for command in stored if command["name"] == "video")
    video["options"] = video["options"][:1]  # an older /video, with the prompt alone
    code, report = await run_doctor(doctor_env)
    assert code == 1
    assert line(report, "FAIL  Commands:").endswith("Discord has an older /video")


async def test_a_rejected_token_is_one_line_and_nothing_after_it_waits(fake_discord, doctor_env):
    code, report = await run_doctor({**doctor_env, "DISCORD_TOKEN": "not-the-token"})
    assert code == 1
    assert line(report, "FAIL  Discord token: rejected by Discord")
    assert "developer portal" in fix_under(report, "FAIL  Discord token:")
    assert "Server" not in report and "Commands" not in report
    assert line(report, "ok    Segmind key:")


async def test_a_server_not_on_allowed_guilds_is_a_warning(fake_discord, services, doctor_env):
    await sync_commands_with_the_real_bot(fake_discord, services)
    other = fake_discord.world.add_guild("Elsewhere")
    allowed = str(fake_discord.world.guild.id)
    code, report = await run_doctor({**doctor_env, "ALLOWED_GUILDS": allowed})
    assert code == 0, report
    assert "leaves this server" in line(report, f'warn  Server "Elsewhere" ({other.id}):')


# --- as an operator runs it ------------------------------------------------------------------


async def run_bot_py(tmp_path: Path, fake, env: dict[str, str], *args: str) -> tuple[int, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "SEGMIND_"))}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.harness.run_bot", *args,
        cwd=tmp_path,
        env={
            **clean,
            **env,
            "PYTHONPATH": str(ROOT),
            "FAKE_DISCORD_API": fake.api_base,
            "FAKE_DISCORD_GATEWAY": fake.gateway_url,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode() + stderr.decode()


async def test_bot_py_doctor_simulate_is_all_well_in_its_own_process(
    tmp_path, fake_discord, services, bot_env
):
    await sync_commands_with_the_real_bot(fake_discord, services)
    env = {k: v for k, v in bot_env.items() if k != "SEGMIND_API_KEY"}  # no key to simulate
    code, output = await run_bot_py(tmp_path, fake_discord, env, "doctor", "--simulate")
    assert code == 0, output
    assert "the simulator at http://127.0.0.1:" in line(output, "ok    Segmind key:")
    assert output.rstrip().endswith("All is well.")


async def test_bot_py_doctor_reports_bad_settings_as_lines_and_exits_1(
    tmp_path, fake_discord, bot_env, doctor_env
):
    env = {**doctor_env, "MAX_CONCURRENT_JOBS": "0", "SEGMIND_API_KEY": "sg-wrong"}
    code, output = await run_bot_py(tmp_path, fake_discord, env, "doctor")
    assert code == 1, output
    assert "MAX_CONCURRENT_JOBS='0' is invalid" in line(output, "FAIL  Settings:")
    assert "cannot start" not in output
    # The other checks still ran with the valid settings.
    assert line(output, "FAIL  Segmind key: refused")
    assert line(output, "warn  Commands:")  # no database, so never synced: not yet
    assert not (tmp_path / "data" / "bot.db").exists()  # the doctor creates no database
    assert line(output, "ok    Database:").endswith("it will be created at first start")
