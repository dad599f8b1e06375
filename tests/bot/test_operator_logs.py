"""What the operator reads: the real bot process with LOG_FORMAT=json at DEBUG, and its start.

Every line of stderr must parse as one JSON object; the job's lines name the job, server,
channel, member and Segmind request; no line holds the bot token, the Segmind key, an
interaction token or the prompt; and start-up says what is running without warning about
voice, which the bot never uses.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from tests.harness.env import bot_env

# Long and distinctive, so any piece of it in a log line is found.
PROMPT = "a copper heron wading through moonlit rice paddies while lanterns drift overhead"


async def run_bot_with_json_logs(
    tmp_path: Path, fake, simulator, key: str, *, level: str = "DEBUG"
) -> tuple[asyncio.subprocess.Process, list[str]]:
    env = bot_env(
        tmp_path,
        fake,
        SEGMIND_API_KEY=key,
        SEGMIND_BASE_URL=simulator.base_url,
        DISCORD_GUILD_ID=str(fake.world.guild.id),
        POLL_INTERVAL_SECONDS="0.5",
        LOG_LEVEL=level,
        LOG_FORMAT="json",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.harness.run_bot",
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    lines: list[str] = []

    async def drain() -> None:  # at DEBUG the pipe would fill and stall the bot otherwise
        assert process.stderr is not None
        async for raw in process.stderr:
            lines.append(raw.decode())

    process.drain = asyncio.create_task(drain())  # type: ignore[attr-defined]
    return process, lines


async def stop(process: asyncio.subprocess.Process) -> int:
    process.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(process.wait(), 10)
    await asyncio.wait_for(process.drain, 10)  # type: ignore[attr-defined]
    return code


def objects(lines: list[str]) -> list[dict[str, Any]]:
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise AssertionError(f"not one JSON object: {line!r}") from error
    return parsed


async def test_json_logs_name_the_job_and_its_people_and_hold_no_secret_or_prompt(
    tmp_path, fake_discord, simulator, segmind_api_key
):
    alice = fake_discord.world.member_named("alice")
    process, lines = await run_bot_with_json_logs(
        tmp_path, fake_discord, simulator, segmind_api_key
    )
    try:
        await fake_discord.wait_until(lambda: fake_discord.gateway.identify_payloads, timeout=20)
        record = await fake_discord.dispatch_slash_command(
            "video", {"prompt": PROMPT, "seed": 3}, user=alice
        )
        await fake_discord.wait_for_ack(record)
        await fake_discord.wait_for_message(record.channel_id, lambda m: m.attachments, timeout=20)
    finally:
        code = await stop(process)
    assert code == 0, "".join(lines[-20:])
    logged = objects(lines)
    assert len(logged) > 20  # DEBUG: discord.py, aiohttp and the bot all wrote

    submitted = [
        line
        for line in logged
        if line["logger"] == "services.jobs" and "submitted request_id=" in line["message"]
    ]
    assert len(submitted) == 1
    ids = {
        "job_id": 1,
        "guild_id": fake_discord.world.guild.id,
        "channel_id": record.channel_id,
        "user_id": alice.id,
    }
    assert {k: submitted[0].get(k) for k in ids} == ids
    # The interaction's own lines (its task, not the job's) name the member and the job.
    [queued] = [line for line in logged if line["message"].startswith("job=1 queued")]
    assert {k: queued.get(k) for k in ids} == ids
    assert queued["logger"].startswith("cogs.")
    request_id = submitted[0]["request_id"]
    assert submitted[0]["message"].endswith(f"request_id={request_id}")
    # Later lines of the job (polls, download, delivery) carry the request id too.
    later = [line for line in logged[logged.index(submitted[0]) + 1 :] if line.get("job_id") == 1]
    assert later and all(line["request_id"] == request_id for line in later)

    text = "".join(lines)
    for secret in (fake_discord.world.token, segmind_api_key, record.token):
        assert secret not in text
    # Not the prompt, nor any run of five of its words.
    words = PROMPT.split()
    for start in range(len(words) - 4):
        assert " ".join(words[start : start + 5]) not in text


async def test_start_up_says_what_runs_and_nothing_about_voice(
    tmp_path, fake_discord, simulator, segmind_api_key
):
    process, lines = await run_bot_with_json_logs(
        tmp_path, fake_discord, simulator, segmind_api_key, level="INFO"
    )
    try:
        await fake_discord.wait_until(lambda: any("ready as" in line for line in lines), timeout=20)
    finally:
        code = await stop(process)
    assert code == 0, "".join(lines[-20:])
    [start] = [line for line in objects(lines) if "ready as" in line["message"]]
    message = start["message"]
    assert message.startswith("videobot ")
    assert "1 server, 1 shard" in message
    assert str(tmp_path / "bot.db") in message
    assert f"live Segmind at {simulator.base_url}" in message
    text = "".join(lines).lower()
    assert "pynacl" not in text and "davey" not in text and "voice" not in text
    assert not [line for line in objects(lines) if line["level"] in ("WARNING", "ERROR")]
