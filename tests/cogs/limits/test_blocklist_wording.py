"""`/videolimit blocklist`: its pages fit Discord at the most terms allowed, its autocomplete."""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import discord
import pytest

from cogs.limits import blocklist as blocklist_cog
from cogs.limits import blocklist_wording
from cogs.limits.blocklist import blocked_term_autocomplete
from cogs.limits.blocklist_wording import render_added, render_blocklist
from services.blocklist import Blocklist, BlocklistOverview, TermAdded
from services.blocklist_terms import MAX_TERM_LENGTH, MAX_TERMS, parse_term
from services.models import BlockedPrompt, BlocklistEntry
from services.storage import Storage
from tests.cogs.limits.test_cog import GUILD, MOD_ID, FakeInteraction, member
from tests.fakeclock import FakeClock


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    opened = await Storage.open(tmp_path / "bot.db")
    yield opened
    await opened.close()


def test_the_fullest_blocklist_pages_within_discords_embed_limits():
    terms = tuple(
        BlocklistEntry(GUILD, f"{n:03}" + "`x" * (MAX_TERM_LENGTH // 2 - 2), MOD_ID, 1e9)
        for n in range(MAX_TERMS)
    )
    refusals = tuple(BlockedPrompt(n, GUILD, 7, 8, terms[n].term, 1e9) for n in range(20))

    pages = render_blocklist(BlocklistOverview(terms, refusals, MAX_TERMS))

    assert len(pages) > 1
    text = "\n".join(page.description or "" for page in pages)
    assert all(f"`{n:03}'x" in text for n in range(MAX_TERMS))  # a backtick cannot end the span
    assert text.count("<@8> in <#7>") == 20
    for page in pages:
        assert len(page.description or "") <= 4096 and len(page) <= 6000


async def test_remove_suggests_the_servers_terms_to_moderators_only(storage):
    blocklist = Blocklist(storage, FakeClock())
    for term in ("dragon", "red dragon", "castle"):
        await blocklist.add(GUILD, term, actor_id=MOD_ID)
    client = SimpleNamespace(services=SimpleNamespace(blocklist=blocklist))
    moderator = FakeInteraction(client, member(MOD_ID), discord.Permissions(manage_guild=True))
    client.services.limits = SimpleNamespace(moderator_role_id=_no_role)
    plain = FakeInteraction(client, member(2), discord.Permissions.none())

    offered = await blocked_term_autocomplete(moderator, "DRAG")  # type: ignore[arg-type]
    hidden = await blocked_term_autocomplete(plain, "")  # type: ignore[arg-type]

    assert [c.value for c in offered] == ["dragon", "red dragon"]
    assert hidden == []


async def _no_role(guild_id: int) -> None:
    return None


def test_the_blocklist_cog_reaches_storage_only_through_the_service():
    for module in (blocklist_cog, blocklist_wording):
        tree = ast.parse(Path(module.__file__ or "").read_text())
        imported = [
            node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
        ] + [
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        ]
        assert not [name for name in imported if name.startswith("services.storage")], module


def _added(term: str, *, blocks_default: bool = False) -> TermAdded:
    return TermAdded(parse_term(term), 1, MAX_TERMS, blocks_default)


def test_an_added_term_says_both_fields_plainly_and_warns_about_the_default_negative_prompt():
    plain = render_added(_added("dragon"))
    assert plain.startswith(
        "Requests with the word `dragon` in their prompt or negative prompt are now refused"
    )
    assert "(or in the negative prompt)" not in plain and "Warning" not in plain
    warned = render_added(_added("blurry", blocks_default=True))
    assert "**Warning:** the server's default negative prompt has this term too" in warned
