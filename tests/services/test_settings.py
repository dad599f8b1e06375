"""Settings: every problem reported at once, exit code 2, no secret echoed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.database_url import database_path_from_url
from services.periods import LimitSpec
from services.settings import SettingsError, load_settings

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


# Every numeric setting: below its floor, above its ceiling, and not a finite number.
OUT_OF_BOUNDS = [
    ("MAX_CONCURRENT_JOBS", "101"),
    ("MAX_CONCURRENT_JOBS", "1.5"),
    ("MAX_JOBS_PER_MEMBER", "0"),
    ("MAX_JOBS_PER_MEMBER", "1000"),
    ("JOB_DEADLINE_MINUTES", "1e308"),
    ("JOB_DEADLINE_MINUTES", "0.5"),
    ("JOB_DEADLINE_MINUTES", "181"),
    ("JOB_DEADLINE_MINUTES", "inf"),
    ("JOB_DEADLINE_MINUTES", "nan"),
    ("POLL_INTERVAL_SECONDS", "1e-300"),
    ("POLL_INTERVAL_SECONDS", "0.1"),
    ("POLL_INTERVAL_SECONDS", "61"),
    ("POLL_INTERVAL_SECONDS", "-inf"),
    ("POLL_INTERVAL_SECONDS", "NaN"),
    ("EXPECTED_CLIP_SECONDS", "0"),
    ("EXPECTED_CLIP_SECONDS", "1e9"),
    ("EXPECTED_CLIP_SECONDS", "nan"),
    ("CLIP_COST_USD", "inf"),
    ("CLIP_COST_USD", "1e308"),
    ("MAX_DOWNLOAD_MB", "0"),
    ("MAX_DOWNLOAD_MB", "99999999"),
    ("MAX_DOWNLOAD_MB", "1e3"),
    ("CREDITS_RECHECK_MINUTES", "0"),
    ("CREDITS_RECHECK_MINUTES", "0.01"),
    ("CREDITS_RECHECK_MINUTES", "1e308"),
    ("SIMULATOR_QUEUE_SECONDS", "-1"),
    ("SIMULATOR_QUEUE_SECONDS", "inf"),
    ("SIMULATOR_PROCESSING_SECONDS", "1e308"),
    ("SIMULATOR_PROCESSING_SECONDS", "nan"),
    ("MAX_DAILY_SPEND_USD", "-0.01"),
    ("MAX_DAILY_SPEND_USD", "nan"),
    ("MAX_DAILY_SPEND_USD", "inf"),
    ("MAX_DAILY_SPEND_USD", "ten dollars"),
    ("DEFAULT_LIMIT", "99999999/1d"),
    ("DEFAULT_NEGATIVE_PROMPT", "\u200b\u3164"),
    ("DISCORD_GUILD_ID", "0"),
    ("DISCORD_GUILD_ID", "9223372036854775808"),
    ("ALLOWED_GUILDS", "abc"),
    ("ALLOWED_GUILDS", "123,abc"),
    ("ALLOWED_GUILDS", "-5"),
    ("ALLOWED_GUILDS", "0"),
    ("ALLOWED_GUILDS", "1.5"),
    ("ALLOWED_GUILDS", ","),
    ("ALLOWED_GUILDS", "9223372036854775808"),
]


@pytest.mark.parametrize(("name", "value"), OUT_OF_BOUNDS)
def test_values_outside_a_settings_floor_and_ceiling_are_refused(name, value):
    with pytest.raises(SettingsError) as caught:
        load_settings({**GOOD, name: value})
    [problem] = caught.value.problems
    assert problem.startswith(f"{name}={value!r} is invalid: use ")


@pytest.mark.parametrize(
    ("name", "value", "field", "expected"),
    [
        ("MAX_CONCURRENT_JOBS", "100", "max_concurrent_jobs", 100),
        ("MAX_JOBS_PER_MEMBER", "1", "max_jobs_per_member", 1),
        ("JOB_DEADLINE_MINUTES", "180", "job_deadline_seconds", 180 * 60),
        ("POLL_INTERVAL_SECONDS", "0.5", "poll_interval_seconds", 0.5),
        ("POLL_INTERVAL_SECONDS", "60", "poll_interval_seconds", 60.0),
        ("EXPECTED_CLIP_SECONDS", "10", "expected_clip_seconds", 10.0),
        ("CLIP_COST_USD", "0", "clip_cost_usd", 0.0),
        ("MAX_DOWNLOAD_MB", "1024", "max_download_bytes", 1024 * 1024 * 1024),
        ("CREDITS_RECHECK_MINUTES", "1", "credits_recheck_seconds", 60.0),
        ("SIMULATOR_QUEUE_SECONDS", "0", "simulator_queue_seconds", 0.0),
        ("MAX_DAILY_SPEND_USD", "0", "max_daily_spend_usd", 0.0),
        ("MAX_DAILY_SPEND_USD", "25.50", "max_daily_spend_usd", 25.5),
        ("ALLOWED_GUILDS", " 12, 34 ,", "allowed_guilds", frozenset({12, 34})),
        ("ALLOWED_GUILDS", "9223372036854775807", "allowed_guilds", frozenset({2**63 - 1})),
    ],
)
def test_values_at_the_edges_are_accepted(name, value, field, expected):
    assert getattr(load_settings({**GOOD, name: value}), field) == expected


def test_the_ceiling_and_the_allowed_servers_are_off_when_unset():
    settings = load_settings({**GOOD, "MAX_DAILY_SPEND_USD": "", "ALLOWED_GUILDS": "  "})
    assert settings.max_daily_spend_usd is None and settings.allowed_guilds is None
    assert settings.allows_guild(123)
    listed = load_settings({**GOOD, "ALLOWED_GUILDS": "12,34"})
    assert listed.allows_guild(12) and not listed.allows_guild(56)
    assert not listed.allows_guild(None)


def test_bad_numbers_are_all_reported_together_with_their_ranges():
    env = {
        **GOOD,
        "JOB_DEADLINE_MINUTES": "1e308",
        "POLL_INTERVAL_SECONDS": "1e-300",
        "MAX_CONCURRENT_JOBS": "0",
        "ALLOWED_GUILDS": "12,x",
    }
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert caught.value.problems == [
        "MAX_CONCURRENT_JOBS='0' is invalid: use a whole number of jobs from 1 to 100.",
        "JOB_DEADLINE_MINUTES='1e308' is invalid: use a number of minutes from 1 to 180.",
        "POLL_INTERVAL_SECONDS='1e-300' is invalid: use a number of seconds from 0.5 to 60.",
        "ALLOWED_GUILDS='12,x' is invalid: use server ids (positive whole numbers) separated "
        "by commas.",
    ]


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"JOB_DEADLINE_MINUTES": "2"}, "JOB_DEADLINE_MINUTES=2 is shorter than a typical clip"),
        (
            {"JOB_DEADLINE_MINUTES": "5", "EXPECTED_CLIP_SECONDS": "600"},
            "JOB_DEADLINE_MINUTES=5 is shorter than a typical clip (EXPECTED_CLIP_SECONDS=600)",
        ),
        ({"MAX_DAILY_SPEND_USD": "0.2"}, "MAX_DAILY_SPEND_USD=0.2 is less than one clip"),
        (
            {"DISCORD_GUILD_ID": "5", "ALLOWED_GUILDS": "6,7"},
            "DISCORD_GUILD_ID=5 is not in ALLOWED_GUILDS",
        ),
    ],
)
def test_values_fine_alone_but_harmful_together_are_refused(env, complaint):
    with pytest.raises(SettingsError) as caught:
        load_settings({**GOOD, **env})
    [problem] = caught.value.problems
    assert problem.startswith(complaint)


def test_a_ceiling_of_zero_stops_spending_on_purpose_and_a_short_deadline_may_simulate():
    assert load_settings({**GOOD, "MAX_DAILY_SPEND_USD": "0"}).max_daily_spend_usd == 0
    # The simulator's clips take seconds, so a short deadline is no hazard there.
    simulated = load_settings({**GOOD, "JOB_DEADLINE_MINUTES": "1"}, simulate=True)
    assert simulated.job_deadline_seconds == 60


def test_a_long_bad_value_is_echoed_cut_short():
    with pytest.raises(SettingsError) as caught:
        load_settings({**GOOD, "MAX_DOWNLOAD_MB": "9" * 5000})
    [problem] = caught.value.problems
    assert len(problem) < 200 and "…" in problem


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
        load_settings({**GOOD, "DATABASE_URL": "mysql://bot:hunter2@db/video"})
    [problem] = caught.value.problems
    assert "hunter2" not in problem and "mysql://***@db/video" in problem


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


def test_a_bound_is_written_as_an_operator_would_type_it() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({**GOOD, "MAX_DAILY_SPEND_USD": "-5"})
    [problem] = caught.value.problems
    assert "1,000,000" in problem and "e+" not in problem


def test_metrics_port_and_log_format_are_read_and_checked():
    env = dict(GOOD, METRICS_PORT="9464", LOG_FORMAT="JSON")
    settings = load_settings(env)
    assert (settings.metrics_port, settings.log_format) == (9464, "json")
    assert (load_settings(GOOD).metrics_port, load_settings(GOOD).log_format) == (None, "text")


@pytest.mark.parametrize("port", ["80", "0", "65536", "-1", "9464.5", "http"])
def test_a_metrics_port_out_of_range_is_refused(port):
    with pytest.raises(SettingsError) as caught:
        load_settings(dict(GOOD, METRICS_PORT=port))
    assert caught.value.problems == [
        f"METRICS_PORT={port!r} is invalid: use a port from 1024 to 65535 "
        "(served on 127.0.0.1 only)."
    ]


@pytest.mark.parametrize("fmt", ["xml", "logfmt", "jsonl"])
def test_an_unknown_log_format_is_refused(fmt):
    with pytest.raises(SettingsError) as caught:
        load_settings(dict(GOOD, LOG_FORMAT=fmt))
    assert caught.value.problems == [f"LOG_FORMAT={fmt!r} is invalid: use text or json."]


@pytest.mark.parametrize(
    "password",
    ["hunter2/x", "hun@ter2", "hun ter2", "plain"],
    ids=["slash", "at", "space", "plain"],
)
def test_a_password_in_an_echoed_url_is_masked_whatever_it_holds(password):
    with pytest.raises(SettingsError) as caught:
        # No database named: invalid, so echoed (masked) in the problem line.
        load_settings(dict(GOOD, DATABASE_URL=f"postgresql://bot:{password}@db.example/"))
    [problem] = caught.value.problems
    assert problem.startswith("DATABASE_URL='postgresql://***@db.example/'")
    assert password not in problem


def test_a_postgresql_url_selects_postgresql_and_keeps_its_password_out_of_repr():
    url = "postgresql://bot:hunter2@db.example:5433/videobot"
    settings = load_settings(dict(GOOD, DATABASE_URL=url))
    assert settings.database_url == url and settings.database_location == url
    assert "hunter2" not in repr(settings) and "hunter2" not in settings.database_shown
    # The clips still go beside where SQLite's file would be: a folder on this machine.
    assert settings.clips_dir == Path("data/clips")
    sqlite = load_settings(dict(GOOD, DATABASE_URL="sqlite:///x/bot.db"))
    assert (sqlite.database_url, sqlite.database_location) == (None, Path("x/bot.db"))


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://db.example",  # no database: the driver would pick the user's name
        "postgresql://db.example/",
        "postgresql://db.example/a/b",
        "postgresql:///videobot",  # no server
        "postgresql://db.example:port/videobot",
        "postgresql://db.example/video bot",
    ],
)
def test_a_postgresql_url_without_a_server_or_one_database_is_refused(url):
    with pytest.raises(SettingsError) as caught:
        load_settings(dict(GOOD, DATABASE_URL=url))
    [problem] = caught.value.problems
    assert problem.startswith("DATABASE_URL=") and "postgresql://user:password@host" in problem


def test_a_postgresql_url_may_reach_the_server_over_a_unix_socket():
    url = "postgresql:///videobot?host=/var/run/postgresql"
    assert load_settings(dict(GOOD, DATABASE_URL=url)).database_url == url


def test_without_shard_settings_discord_py_decides_the_shards():
    assert load_settings(GOOD).shards is None


@pytest.mark.parametrize(
    ("env", "count", "ids"),
    [
        ({"SHARD_COUNT": "1"}, 1, (0,)),
        ({"SHARD_COUNT": "3"}, 3, (0, 1, 2)),  # alone: this process runs every shard
        ({"SHARD_COUNT": "4", "SHARD_IDS": "0,2-3"}, 4, (0, 2, 3)),
        ({"SHARD_COUNT": "4", "SHARD_IDS": " 3 , 1 ,"}, 4, (1, 3)),
        ({"SHARD_COUNT": "1024", "SHARD_IDS": "1023"}, 1024, (1023,)),
        ({"SHARD_COUNT": "8", "SHARD_IDS": "5-5"}, 8, (5,)),
    ],
)
def test_shard_count_and_ids_are_read(env, count, ids):
    shared = {"DATABASE_URL": "postgresql://bot@db.example/videobot"}
    plan = load_settings({**GOOD, **shared, **env}).shards
    assert plan is not None
    assert (plan.count, plan.ids) == (count, ids)


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        (
            {"SHARD_COUNT": "0"},
            "SHARD_COUNT='0' is invalid: use a whole number of shards from 1 to 1,024.",
        ),
        (
            {"SHARD_COUNT": "1025"},
            "SHARD_COUNT='1025' is invalid: use a whole number of shards from 1 to 1,024.",
        ),
        (
            {"SHARD_COUNT": "two"},
            "SHARD_COUNT='two' is invalid: use a whole number of shards from 1 to 1,024.",
        ),
        (
            {"SHARD_IDS": "0"},
            "SHARD_IDS needs SHARD_COUNT: the number of shards all processes share.",
        ),
        (
            {"SHARD_COUNT": "4", "SHARD_IDS": "4"},
            "SHARD_IDS='4' is invalid: shard 4 is not below SHARD_COUNT=4 (ids run from 0 to 3).",
        ),
        (
            {"SHARD_COUNT": "4", "SHARD_IDS": "2-9"},
            "SHARD_IDS='2-9' is invalid: shard 9 is not below SHARD_COUNT=4 (ids run from 0 to 3).",
        ),
        (
            {"SHARD_COUNT": "4", "SHARD_IDS": "0,1,1"},
            "SHARD_IDS='0,1,1' is invalid: shard 1 is listed twice.",
        ),
        (
            {"SHARD_COUNT": "4", "SHARD_IDS": "0-2,2-3"},
            "SHARD_IDS='0-2,2-3' is invalid: shard 2 is listed twice.",
        ),
        (
            {"SHARD_COUNT": "4", "SHARD_IDS": "3-1"},
            "SHARD_IDS='3-1' is invalid: the range 3-1 runs backwards: write 1-3.",
        ),
        (
            {"SHARD_COUNT": "4", "SHARD_IDS": "-1"},
            "SHARD_IDS='-1' is invalid: use shard ids and ranges separated by commas, like 0,2-3.",
        ),
        (
            {"SHARD_COUNT": "4", "SHARD_IDS": "one"},
            "SHARD_IDS='one' is invalid: use shard ids and ranges separated by commas, like 0,2-3.",
        ),
        (
            {"SHARD_COUNT": "4", "SHARD_IDS": ",,"},
            "SHARD_IDS=',,' is invalid: use shard ids and ranges separated by commas, like 0,2-3.",
        ),
        (
            {"SHARD_COUNT": "4", "SHARD_IDS": "0;1"},
            "SHARD_IDS='0;1' is invalid: use shard ids and ranges separated by commas, like 0,2-3.",
        ),
    ],
)
def test_bad_shard_settings_are_refused_with_the_problem(env, problem):
    with pytest.raises(SettingsError) as caught:
        load_settings({**GOOD, **env})
    assert caught.value.problems == [problem]


def test_shard_ids_with_a_bad_shard_count_report_only_the_count():
    # The ids cannot be checked against a count that is itself wrong: one line, not two.
    with pytest.raises(SettingsError) as caught:
        load_settings({**GOOD, "SHARD_COUNT": "0", "SHARD_IDS": "0"})
    assert caught.value.problems == [
        "SHARD_COUNT='0' is invalid: use a whole number of shards from 1 to 1,024."
    ]


def test_a_shard_plan_names_its_shards_as_an_operator_writes_them():
    shared = {**GOOD, "DATABASE_URL": "postgresql://bot@db.example/videobot"}
    plan = load_settings({**shared, "SHARD_COUNT": "8", "SHARD_IDS": "0,2-4,7"}).shards
    assert plan is not None
    assert plan.describe() == "shards 0, 2-4, 7 of 8"
    assert load_settings({**shared, "SHARD_COUNT": "2", "SHARD_IDS": "1"}).shards.describe() == (
        "shard 1 of 2"
    )


def test_a_share_of_the_shards_on_a_sqlite_file_is_refused():
    # One process per SQLite file: the other shards would go unserved, or, each process on a
    # file of its own, the daily ceiling would be counted once per process.
    with pytest.raises(SettingsError) as caught:
        load_settings({**GOOD, "SHARD_COUNT": "2", "SHARD_IDS": "1"})
    [problem] = caught.value.problems
    assert problem.startswith("SHARD_IDS runs shard 1 of 2 but DATABASE_URL is a SQLite file")
    # Every shard in this one process is fine on SQLite.
    assert load_settings({**GOOD, "SHARD_COUNT": "2", "SHARD_IDS": "0-1"}).shards is not None
