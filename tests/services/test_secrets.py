"""Neither the Discord token nor the Segmind key reaches a log line, at any level."""

from __future__ import annotations

import dataclasses
import io
import logging

import pytest

from services import logsafety
from services.cli import generate
from services.models import VideoRequest
from services.settings import configure_logging, load_settings

# Token-shaped (three dot-separated parts) without matching a real token's exact form.
DISCORD_TOKEN = "fake-discord-token.for-tests.only-0123456789abcdef"


def test_redaction_blanks_configured_secrets_and_tokens_in_webhook_urls():
    redactor = logsafety.RedactSecrets([DISCORD_TOKEN, "sg-key-123456789", "", "short"])
    line = (
        f"token {DISCORD_TOKEN} key sg-key-123456789 PATCH "
        "https://discord.com/api/v10/webhooks/1234/aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDEyMzQ1/messages/@original"
    )
    cleaned = redactor.redact(line)
    assert DISCORD_TOKEN not in cleaned and "sg-key-123456789" not in cleaned
    assert "aW50ZXJhY3Rpb246" not in cleaned
    assert "/webhooks/1234/[redacted]/messages/@original" in cleaned
    assert "short" not in redactor._secrets  # too short to redact safely


# Shaped like Discord's: base64url of "interaction:<id>:<random>", about 130 characters.
INTERACTION_TOKEN = (
    "aW50ZXJhY3Rpb246MTE4NzY1NDMyMTA5ODc2NTQzMjpXeFh5Wno5ODc2NTQzMjEwYWJjZGVmZ2hpamtsbW5v"
    "cHFyc3R1dnd4eXpBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWjAx"
)
SHORT_INTERACTION_TOKEN = INTERACTION_TOKEN[:48]  # caught by its "interaction:" prefix alone
KEYED_TOKEN = "Zm9yLXRlc3RzLW9ubHk-Xy1h"  # short and unknown: caught by the key it is under
OPAQUE_TOKEN = "Zm9yLXRlc3RzLW9ubHk" * 6  # 114 base64url characters, no known prefix


@pytest.mark.parametrize(
    ("line", "token"),
    [
        # A gateway event as discord.py logs it (a Python dict), and as JSON.
        (f"Event: {{'t': 'INTERACTION_CREATE', 'd': {{'token': '{KEYED_TOKEN}'}}}}", KEYED_TOKEN),
        (f'{{"type": 2, "token": "{KEYED_TOKEN}", "data": {{}}}}', KEYED_TOKEN),
        (f'{{"token":"{KEYED_TOKEN}"}}', KEYED_TOKEN),
        (f"NewJob(guild_id=10, interaction_token='{KEYED_TOKEN}')", KEYED_TOKEN),
        (f"POST /hook?token={KEYED_TOKEN}&wait=true", KEYED_TOKEN),
        # aiosqlite's statement dump: the token is a bare parameter.
        (
            "executing functools.partial(<built-in method execute>, 'INSERT INTO jobs "
            f"(guild_id, interaction_token) VALUES (?, ?)', (10, '{INTERACTION_TOKEN}'))",
            INTERACTION_TOKEN,
        ),
        (f"resuming with {SHORT_INTERACTION_TOKEN} now", SHORT_INTERACTION_TOKEN),
        (f"an opaque {OPAQUE_TOKEN} value", OPAQUE_TOKEN),
    ],
    ids=["gateway dict", "json", "compact json", "repr", "query", "sql", "prefix", "opaque"],
)
def test_redaction_blanks_interaction_tokens_in_any_form(line: str, token: str) -> None:
    cleaned = logsafety.RedactSecrets([]).redact(line)

    assert token not in cleaned and token[:12] not in cleaned
    assert logsafety.REDACTED in cleaned


@pytest.mark.parametrize(
    "line",
    [
        "job=42 guild=1 state=PROCESSING request_id=acab127a-6257-448d-92a2-34fa1592c443",
        "the interaction token expired after 15 minutes; posting to the channel",
        "rate limit bucket hash (372252060b1bf7ea636ee9895a1f02d6)",
        "tokens: 3 of 5 clips left today",
    ],
)
def test_redaction_leaves_ordinary_lines_alone(line: str) -> None:
    assert logsafety.RedactSecrets([]).redact(line) == line


def test_payload_loggers_stay_at_info_when_the_bot_runs_at_debug() -> None:
    root = logging.getLogger()
    saved = root.level, {n: logging.getLogger(n).level for n in logsafety.PAYLOAD_LOGGERS}
    try:
        root.setLevel(logging.DEBUG)
        configure_logging("DEBUG")

        assert not logging.getLogger("aiosqlite").isEnabledFor(logging.DEBUG)
        assert not logging.getLogger("discord.gateway").isEnabledFor(logging.DEBUG)
        assert logging.getLogger("aiosqlite").isEnabledFor(logging.INFO)
        # Its DEBUG lines are whole message bodies, members' prompts among them.
        assert not logging.getLogger("discord.http").isEnabledFor(logging.DEBUG)
        assert logging.getLogger("discord.http").isEnabledFor(logging.WARNING)
        assert logging.getLogger("discord.client").isEnabledFor(logging.DEBUG)
    finally:
        root.setLevel(saved[0])
        for name, level in saved[1].items():
            logging.getLogger(name).setLevel(level)


def test_redaction_covers_exception_tracebacks():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logsafety.RedactSecrets(["sg-key-123456789"]))
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    try:
        try:
            raise RuntimeError("bad key sg-key-123456789")
        except RuntimeError:
            logger.exception("failed with %s", "sg-key-123456789")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "sg-key-123456789" not in text
    assert "RuntimeError: bad key [redacted]" in text


async def test_a_whole_job_at_debug_level_never_logs_the_key(
    simulator, segmind_api_key, caplog, tmp_path, monkeypatch
):
    """Drive submit, polls, result and download; then search every record and the output."""
    caplog.set_level(logging.DEBUG)
    settings = load_settings(
        {
            "SEGMIND_API_KEY": segmind_api_key,
            "DISCORD_TOKEN": DISCORD_TOKEN,
        }
    )
    # Polled far faster than an operator may (0.5 s floor): the simulator is on loopback.
    settings = dataclasses.replace(
        settings, segmind_base_url=simulator.base_url, poll_interval_seconds=0.01
    )
    out = io.StringIO()
    code = await generate(
        settings, VideoRequest.create("a secretive cat"), tmp_path / "c.mp4", stream=out
    )
    assert code == 0
    assert len(simulator.submits) == 1
    texts = [record.getMessage() for record in caplog.records] + [out.getvalue()]
    assert any("submitted" in text for text in texts)  # the pipeline did log
    for text in texts:
        assert segmind_api_key not in text
        assert DISCORD_TOKEN not in text
