"""Segmind video bot: start it, sync its commands, or make one clip from the command line.

python bot.py [--simulate]                      run the bot
python bot.py [--simulate] sync                 sync slash commands now, then run
python bot.py [--simulate] generate "a cat surfing" --out cat.mp4
python bot.py [--simulate] doctor               check everything, print what to fix
python bot.py migrate-db TARGET_URL             copy the database to another (SQLite <-> PostgreSQL)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

import aiohttp
import discord
from dotenv import find_dotenv, load_dotenv

from cogs.discord_errors import MISSING_ACCESS
from services import logsafety, loop_lag
from services.errors import ValidationError
from services.models import VideoRequest
from services.settings import Settings, SettingsError, configure_logging, load_settings
from services.storage.database import DATABASE_ERRORS

log = logging.getLogger("bot")
EXIT_CONFIG = 2
# Why a database cannot be opened: the engine refuses, or the file or server is unreachable.
OPEN_ERRORS: tuple[type[Exception], ...] = (*DATABASE_ERRORS, OSError)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bot.py", description="Text-to-video Discord bot (Segmind CogVideoX-5B)."
    )
    simulate_help = "use a local Segmind simulator: no key, no cost"
    parser.add_argument("--simulate", action="store_true", help=simulate_help)
    # Also accepted after the command (`generate "..." --simulate`), where newcomers type it.
    # SUPPRESS keeps a subcommand from resetting a --simulate given before it.
    after = argparse.ArgumentParser(add_help=False)
    after.add_argument(
        "--simulate", action="store_true", default=argparse.SUPPRESS, help=simulate_help
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", parents=[after], help="run the bot (the default)")
    sub.add_parser("sync", parents=[after], help="sync slash commands even if unchanged, then run")
    sub.add_parser(
        "doctor", parents=[after], help="check settings, database, Discord and Segmind; fix list"
    )
    migrate = sub.add_parser(
        "migrate-db", help="copy the database DATABASE_URL names into an empty TARGET_URL"
    )
    migrate.add_argument("target", metavar="TARGET_URL", help="sqlite:///… or postgresql://…")
    gen = sub.add_parser(
        "generate", parents=[after], help="make one clip without Discord and save it"
    )
    gen.add_argument("prompt")
    gen.add_argument("--out", type=Path, required=True, help="where to write the MP4")
    gen.add_argument("--negative-prompt")
    gen.add_argument("--input-frames", type=int)
    gen.add_argument("--steps", type=int)
    gen.add_argument("--guidance-scale", type=float)
    gen.add_argument("--seed", type=int)
    gen.add_argument("--frame-rate", type=int)
    gen.add_argument(
        "--verbose",
        action="store_true",
        help="log at LOG_LEVEL while generating (otherwise only warnings and errors)",
    )
    return parser.parse_args(argv)


def fail(problems: list[str], *, header: str = "The bot cannot start:") -> int:
    print(header, file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)
    return EXIT_CONFIG


async def run_bot(settings: Settings, *, force_sync: bool) -> int:
    # Imported here so `generate` and config errors do not pay for loading discord.py cogs.
    from cogs.videobot import create_bot
    from services.app import open_services

    opened = False
    try:
        async with loop_lag.sampling_if_asked(), open_services(settings) as services:
            opened = True
            return await serve(create_bot(services, force_sync=force_sync), settings)
    except SettingsError as error:
        return fail(error.problems)
    except OPEN_ERRORS as error:
        if opened:
            raise
        return fail(
            [f"DATABASE_URL: the database {settings.database_shown} cannot be opened: {error}"]
        )


async def serve(bot: discord.Client, settings: Settings) -> int:
    """Run until SIGINT/SIGTERM; start-up failures become one line for the operator."""
    loop = asyncio.get_running_loop()
    closing: list[asyncio.Task[None]] = []  # held, so the close task is not collected
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: closing.append(asyncio.create_task(bot.close())))
    try:
        async with bot:
            await bot.start(settings.discord_token)
    except discord.LoginFailure:
        return fail(
            [
                (
                    "DISCORD_TOKEN was rejected by Discord: "
                    "copy the bot token again from the developer portal."
                )
            ]
        )
    except discord.PrivilegedIntentsRequired:
        return fail(["Discord refused the gateway intents this bot asks for."])
    except discord.Forbidden as error:
        if settings.discord_guild_id is None or error.code != MISSING_ACCESS:
            raise
        return fail(
            [
                (
                    f"DISCORD_GUILD_ID={settings.discord_guild_id}: the bot is not in that "
                    "server, or was invited without the applications.commands scope."
                )
            ]
        )
    except aiohttp.ClientConnectionError as error:
        # discord.py reconnects by itself once connected; this is the very first connection.
        print(f"Could not reach Discord: {error}", file=sys.stderr)
        return 1
    log.info("stopped cleanly")
    return 0


def generate_command(args: argparse.Namespace, settings: Settings) -> int:
    """`generate`: its options checked before anything is paid for, then the job."""
    # Imported here: only this command needs them (rich loads for a moment).
    from services.cli import out_problem, run_generate

    try:
        request = VideoRequest.create(
            args.prompt,
            seed=args.seed,
            negative_prompt=args.negative_prompt,
            input_frames=args.input_frames,
            steps=args.steps,
            guidance_scale=args.guidance_scale,
            frame_rate=args.frame_rate,
            default_negative_prompt=settings.default_negative_prompt,
        )
    except ValidationError as error:
        return fail([error.user_message], header="Nothing was sent:")
    # Found out only after the clip is made and paid for, otherwise.
    if problem := out_problem(args.out):
        return fail([problem], header="Nothing was sent:")
    return run_generate(settings, request, args.out, verbose=args.verbose)


def migrate_db_command(args: argparse.Namespace) -> int:
    """`migrate-db`: only DATABASE_URL matters, so neither token nor key is asked for."""
    from services import migrate_db

    try:
        settings = load_settings(simulate=True, need_discord=False)
    except SettingsError as error:
        return fail(error.problems, header="Nothing was copied:")
    configure_logging(settings.log_level, settings.log_format)
    logsafety.install([settings.discord_token, settings.segmind_api_key])
    try:
        return asyncio.run(migrate_db.run(settings, args.target))
    except KeyboardInterrupt:
        print("Stopped: the copy was undone, the target holds none of it.", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # .env in the working directory (or above it), which is where the README runs from.
    load_dotenv(find_dotenv(usecwd=True))
    command = args.command or "run"
    if command == "doctor":
        # Before load_settings: a bad setting is one of the doctor's findings, not a stop.
        from cogs.doctor import run_doctor

        try:
            return asyncio.run(run_doctor(simulate=args.simulate or None))
        except KeyboardInterrupt:
            return 130
    if command == "migrate-db":
        return migrate_db_command(args)
    try:
        settings = load_settings(simulate=args.simulate or None, need_discord=command != "generate")
    except SettingsError as error:
        return fail(error.problems)
    configure_logging(settings.log_level, settings.log_format)
    logsafety.install([settings.discord_token, settings.segmind_api_key])

    if command == "generate":
        try:
            return generate_command(args, settings)
        except KeyboardInterrupt:
            print("Stopped. A clip already sent to Segmind may still be billed.", file=sys.stderr)
            return 130
    try:
        return asyncio.run(run_bot(settings, force_sync=command == "sync"))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
