"""Settings: every problem reported at once, exit code 2, no secret echoed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.periods import LimitSpec
from services.settings import SettingsError, database_path_from_url, load_settings

ROOT = Path(__file__).resolve().parents[2]
GOOD = {"DISCORD_TOKEN": "discord-token-value-123456", "SEGMIND_API_KEY": "SG_secret_key_value_987"}


def test_defaults_when_only_secrets_are_given():
    settings = load_settings(GOOD)
    assert settings.segmind_base_url == "https://api.segmind.com"
    assert settings.database_path == Path("data/bot.db")
    assert settings.default_limit == LimitSpec(5, 86400)
    assert settings.max_concurrent_jobs == 3
    assert settings.job_deadline_seconds == 900
    assert settings.discord_guild_id is None


def test_secrets_are_hidden_from_repr():
    text = repr(load_settings(GOOD))
    assert GOOD["DISCORD_TOKEN"] not in text
    assert GOOD["SEGMIND_API_KEY"] not in text


def test_every_problem_is_listed_together():
    env = {"MAX_CONCURRENT_JOBS": "abc", "DEFAULT_LIMIT": "five", "LOG_LEVEL": "LOUD"}
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    problems = caught.value.problems
    assert any(p.startswith("DISCORD_TOKEN is missing") for p in problems)
    assert any(p.startswith("SEGMIND_API_KEY is missing") for p in problems)
    assert any(p.startswith("MAX_CONCURRENT_JOBS='abc'") for p in problems)
    assert any(p.startswith("DEFAULT_LIMIT='five'") for p in problems)
    assert any(p.startswith("LOG_LEVEL='LOUD'") for p in problems)
    assert len(problems) == 5


def test_simulating_needs_no_segmind_key():
    settings = load_settings({"DISCORD_TOKEN": "t" * 30}, simulate=True)
    assert settings.simulate is True
    assert settings.segmind_api_key == ""


def test_generate_needs_no_discord_token():
    settings = load_settings({"SEGMIND_API_KEY": "k" * 20}, need_discord=False)
    assert settings.discord_token == ""


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_CONCURRENT_JOBS", "0"),
        ("MAX_JOBS_PER_MEMBER", "-1"),
        ("DEFAULT_LIMIT", "5/1y"),
        ("DEFAULT_LIMIT", "5"),
        ("SEGMIND_BASE_URL", "ftp://example"),
        ("SEGMIND_BASE_URL", "https://api.segmind.com/?x=1"),
        ("DATABASE_URL", "postgres://db"),
        ("DISCORD_GUILD_ID", "guild"),
        ("JOB_DEADLINE_MINUTES", "0"),
        ("CLIP_COST_USD", "-1"),
        ("CLIP_COST_USD", "nan"),
        ("SIMULATE", "maybe"),
    ],
)
def test_malformed_values_are_refused(name, value):
    with pytest.raises(SettingsError) as caught:
        load_settings({**GOOD, name: value})
    assert caught.value.problems[0].startswith(f"{name}={value!r} is invalid")


def test_database_url_forms():
    assert database_path_from_url("sqlite:///data/bot.db") == Path("data/bot.db")
    assert database_path_from_url("sqlite:////var/lib/bot.db") == Path("/var/lib/bot.db")
    with pytest.raises(ValueError, match="use sqlite:///"):
        database_path_from_url("sqlite://")


@pytest.mark.parametrize(
    "url",
    ["sqlite:///data/", "sqlite:///:memory:", "sqlite:///bot.db?mode=ro", "sqlite:///{tmp}"],
)
def test_database_urls_that_name_no_file_are_refused(url, tmp_path):
    # Each would lose jobs silently or fail later: in memory, a directory, a query as a name.
    with pytest.raises(ValueError, match="must name a database file"):
        database_path_from_url(url.format(tmp=tmp_path))


def test_a_password_in_a_url_is_not_echoed():
    with pytest.raises(SettingsError) as caught:
        load_settings({**GOOD, "DATABASE_URL": "postgres://bot:hunter2@db/video"})
    [problem] = caught.value.problems
    assert "hunter2" not in problem and "postgres://***@db/video" in problem


def _run_bot(env: dict[str, str], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "SEGMIND_"))}
    return subprocess.run(
        [sys.executable, str(ROOT / "bot.py"), *args],
        env={**clean, **env},
        cwd=tmp_path,  # no .env there, so only env counts
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_bot_refuses_to_start_with_exit_code_2_and_no_traceback(tmp_path):
    result = _run_bot(
        {
            "SEGMIND_API_KEY": "SG_secret_key_value_987",
            "MAX_CONCURRENT_JOBS": "abc",
            "DEFAULT_LIMIT": "five",
        },
        tmp_path,
    )
    assert result.returncode == 2
    assert "DISCORD_TOKEN is missing" in result.stderr
    assert "MAX_CONCURRENT_JOBS='abc' is invalid" in result.stderr
    assert "DEFAULT_LIMIT='five' is invalid" in result.stderr
    assert "Traceback" not in result.stderr
    assert "SG_secret_key_value_987" not in result.stderr + result.stdout


def test_settings_come_from_a_dotenv_file(tmp_path):
    (tmp_path / ".env").write_text("DISCORD_TOKEN=abc\nMAX_CONCURRENT_JOBS=many\n")
    result = _run_bot({}, tmp_path, "--simulate")
    assert result.returncode == 2
    assert "MAX_CONCURRENT_JOBS='many' is invalid" in result.stderr
    assert "DISCORD_TOKEN is missing" not in result.stderr
