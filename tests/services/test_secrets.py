"""Neither the Discord token nor the Segmind key reaches a log line, at any level."""

from __future__ import annotations

import dataclasses
import io
import logging

from services import logsafety
from services.cli import generate
from services.models import VideoRequest
from services.settings import load_settings

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
