"""`bot.py doctor` against the fake Discord and the simulator: all well, and each trouble."""

from __future__ import annotations

import asyncio
import os
import sys
from functools import partial
from pathlib import Path

import pytest

from cogs.doctor import check_discord
from cogs.videobot import create_bot
from services.doctor import diagnose, exit_code, render
from tests.fakediscord import Perm, running_client

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
        f"/video, /videolimit synced to server {guild.id}"
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


async def test_unsynced_commands_say_to_run_sync(fake_discord, doctor_env):
    code, report = await run_doctor(doctor_env)  # the bot never started, so never synced
    guild = fake_discord.world.guild
    assert code == 1
    assert line(report, "FAIL  Commands:").endswith(
        f"not synced to server {guild.id}: Discord lacks /video, /videolimit"
    )
    assert fix_under(report, "FAIL  Commands:").startswith("run `python bot.py sync`")


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
    assert line(output, "FAIL  Commands:")
    assert not (tmp_path / "data" / "bot.db").exists()  # the doctor creates no database
    assert line(output, "ok    Database:").endswith("it will be created at first start")
