"""A server's blocklist: words, phrases and /regex/ patterns a prompt may not contain.

Screening runs before Discord's 3-second answer, so each server's terms are compiled once
and kept in memory, refreshed by every add and remove. Word terms are matched in the event
loop (an index lookup per word); patterns run in a worker thread on RE2, whose time is
linear in the prompt (at most 2000 characters), within a total budget checked between
patterns. Past the budget the request counts as a match (fail closed): an unchecked prompt
could be the one a pattern was written to stop, and a refusal costs the member nothing.
A pattern is refused when added if it is slow alone, or if with it the server's patterns
together would take over half the budget on one request; so this is a last line, logged.

This process's cache is the only copy: with several processes on one database, a term
added on one reaches the others when they restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from services.blocklist_terms import (
    MAX_TERMS,
    PATTERNS_BUDGET_SECONDS,
    TERM_REFUSED_DETAIL,
    Hit,
    Term,
    TermNotBlocked,
    TermSet,
    parse_term,
    readings,
    refuse_slow_pattern,
)
from services.clock import Clock
from services.errors import RefusedError, ValidationError
from services.models import DEFAULT_NEGATIVE_PROMPT, BlockedPrompt, BlocklistEntry, VideoRequest
from services.storage import Storage
from services.storage.blocklist import ADD_ACTION, REMOVE_ACTION

__all__ = ["ADD_ACTION", "REMOVE_ACTION", "Blocklist", "PromptBlocked"]  # cogs import these here

log = logging.getLogger(__name__)

RECENT_REFUSALS = 20

# Which text of a request a term was found in.
Field = Literal["prompt", "negative prompt", "default negative prompt"]


class PromptBlocked(RefusedError):
    """The prompt or negative prompt has a blocked term; the message never names it.

    ``field`` says which, so the member knows what to reword; a term in the server's
    default negative prompt (the member left theirs out) is not theirs to reword.
    """

    def __init__(self, *, field: Field = "prompt", timed_out: bool = False) -> None:
        if timed_out:
            message = (
                "Your request could not be checked against this server's blocklist in time, "
                "so no video was made. Please try again or reword it; nothing was spent."
            )
        elif field == "default negative prompt":
            message = (
                "This server's default negative prompt (used because you gave none) has a "
                "word or pattern the server's blocklist does not allow, so no video was made. "
                "Give your own negative prompt, and tell a moderator so they can fix the "
                "default; nothing was spent."
            )
        else:
            message = (
                f"Your {field} uses a word or pattern this server does not allow, so no "
                "video was made. Please reword it; nothing was spent."
            )
        super().__init__(message, detail=f"{field} refused by the blocklist")
        self.field = field
        self.timed_out = timed_out


@dataclass(frozen=True, slots=True)
class TermAdded:
    """A term just added, and how full the server's list now is."""

    term: Term
    count: int
    max_terms: int
    # The server's default negative prompt has it: every /video without one is now refused.
    blocks_default_negative: bool = False


@dataclass(frozen=True, slots=True)
class BlocklistOverview:
    """What `/videolimit blocklist show` lists: the terms, and the latest refusals."""

    terms: tuple[BlocklistEntry, ...]
    refusals: tuple[BlockedPrompt, ...]
    max_terms: int


# The most texts one request screens: a prompt and a negative prompt, each read two ways.
SCREENED_TEXTS = 4
# Long texts a whole pattern set is timed on: one letter repeated, and prose.
_SET_TEXTS = ("a" * 2000, ("a castle at dawn, 2 red dragons over misty hills; " * 40)[:2000])


def pattern_set_seconds(termset: TermSet, *, tries: int = 3) -> float:
    """How long the set's patterns take on one request at worst: its slowest long text,
    ``SCREENED_TEXTS`` times. Best of ``tries`` per text, so a busy machine does not inflate it.

    Blocking: call it from a thread.
    """
    slowest = 0.0
    for text in _SET_TEXTS:
        best = float("inf")
        for _ in range(tries):
            started = time.perf_counter()
            for term in termset.patterns:
                term.pattern.search(text)
            best = min(best, time.perf_counter() - started)
        slowest = max(slowest, best)
    return slowest * SCREENED_TEXTS


def refuse_slow_set(
    termset: TermSet,
    *,
    budget: float = PATTERNS_BUDGET_SECONDS,
    measure: Callable[[TermSet], float] = pattern_set_seconds,
) -> None:
    """Raise ValidationError if the set's patterns together take over half of ``budget``.

    Each can pass ``refuse_slow_pattern`` and many together still spend the budget on every
    request, which would then be refused as not checked in time. Half leaves room for a
    busy machine. Blocking: call it from a thread.
    """
    if termset.patterns and measure(termset) > budget / 2:
        raise ValidationError(
            "This server's blocklist patterns would be too slow together with that one: "
            "every request could be refused as not checked in time. Simplify the patterns, "
            "join several into one, or remove some first. Nothing was changed.",
            detail=TERM_REFUSED_DETAIL,
        )


def _compile(entries: list[BlocklistEntry]) -> TermSet:
    terms = []
    for entry in entries:
        try:
            terms.append(parse_term(entry.term))
        except ValidationError:
            # Stored by a version that read terms differently (or with another regex
            # engine): skipped, so one such term cannot break screening for the server.
            log.warning(
                "guild=%s a stored blocklist term no longer parses; skipped", entry.guild_id
            )
    return TermSet(terms)


def _key_of(text: str) -> str:
    try:
        return parse_term(text).key
    except ValidationError:
        return text


class Blocklist:
    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        *,
        max_terms: int = MAX_TERMS,
        patterns_budget: float = PATTERNS_BUDGET_SECONDS,
        default_negative_prompt: str = DEFAULT_NEGATIVE_PROMPT,
        measure_patterns: Callable[[TermSet], float] = pattern_set_seconds,
    ) -> None:
        self._storage = storage
        self._measure_patterns = measure_patterns  # tests give a fake clock's worth
        self._clock = clock
        self._max_terms = max_terms
        self._patterns_budget = patterns_budget
        # Settings' DEFAULT_NEGATIVE_PROMPT: what a request carries when the member gave none.
        self._default_negative = default_negative_prompt
        self._cache: dict[int, TermSet] = {}

    async def _terms(self, guild_id: int) -> TermSet:
        cached = self._cache.get(guild_id)
        if cached is None:
            cached = _compile(await self._storage.blocklist.terms(guild_id))
            self._cache[guild_id] = cached
        return cached

    async def screen(
        self, guild_id: int, channel_id: int, user_id: int, request: VideoRequest
    ) -> None:
        """Refuse (raise PromptBlocked) a request whose prompt or negative prompt is blocked.

        The refusal is recorded for moderators (who, where, when, which term) first.
        """
        terms = await self._terms(guild_id)
        if not terms.terms:
            return
        hit = await self.find(terms, [request.prompt, request.negative_prompt])
        if hit is None:
            return
        if hit.timed_out:
            log.warning(
                "guild=%s user=%s a blocklist pattern ran out of time; refused (fail closed)",
                guild_id,
                user_id,
            )
        log.info(
            "guild=%s channel=%s user=%s prompt refused by the blocklist",
            guild_id,
            channel_id,
            user_id,
        )
        try:
            await self._storage.blocklist.record_refusal(
                guild_id,
                channel_id,
                user_id,
                hit.term.text,
                at=self._clock.time(),
                timed_out=hit.timed_out,
            )
        except Exception:
            # The record is for moderators; the refusal stands without it.
            log.exception("guild=%s could not record a blocklist refusal", guild_id)
        raise PromptBlocked(field=self._field(request, hit), timed_out=hit.timed_out)

    def _field(self, request: VideoRequest, hit: Hit) -> Field:
        if hit.index == 0:
            return "prompt"
        if request.negative_prompt == self._default_negative:
            return "default negative prompt"
        return "negative prompt"

    async def find(self, terms: TermSet, texts: list[str]) -> Hit | None:
        """The first term in any of ``texts`` (``Hit.index`` says which); patterns in a thread.

        Each text is screened in every reading (narrow spaces dropped, and as spaces).
        """
        read: list[str] = []
        owner: list[int] = []  # which of ``texts`` each reading is of
        for index, text in enumerate(texts):
            for reading in readings(text):
                read.append(reading)
                owner.append(index)
        for reading, index in zip(read, owner, strict=True):
            hit = terms.match_words(reading)
            if hit is not None:
                return Hit(hit.term, index=index)
        if not terms.patterns:
            return None
        hit = await asyncio.to_thread(terms.match_patterns, read, budget=self._patterns_budget)
        if hit is None:
            return None
        return Hit(hit.term, timed_out=hit.timed_out, index=owner[hit.index])

    async def add(self, guild_id: int, text: str, *, actor_id: int) -> TermAdded:
        """Add a term (validated; a pattern is tried on hostile texts first), audited."""
        term = parse_term(text)
        if term.kind == "pattern":
            await asyncio.to_thread(refuse_slow_pattern, term)
            together = TermSet([*(await self._terms(guild_id)).terms, term])
            await asyncio.to_thread(
                refuse_slow_set,
                together,
                budget=self._patterns_budget,
                measure=self._measure_patterns,
            )
        entries = await self._storage.blocklist.add(
            guild_id,
            term.text,
            actor_id=actor_id,
            at=self._clock.time(),
            max_terms=self._max_terms,
            same_as=lambda stored: _key_of(stored) == term.key,
        )
        self._cache[guild_id] = _compile(entries)
        log.info("guild=%s user=%s added a blocklist %s", guild_id, actor_id, term.kind)
        alone = TermSet([term])
        blocks_default = await self.find(alone, [self._default_negative]) is not None
        return TermAdded(term, len(entries), self._max_terms, blocks_default)

    async def remove(self, guild_id: int, text: str, *, actor_id: int) -> str:
        """Remove a term, found as typed or as any spelling that reads the same; audited.

        Returns the term as it was stored.
        """
        typed = " ".join(text.split())
        key = _key_of(typed)
        stored = next(
            (
                entry.term
                for entry in await self._storage.blocklist.terms(guild_id)
                if entry.term == typed or _key_of(entry.term) == key
            ),
            None,
        )
        entries = None
        if stored is not None:
            entries = await self._storage.blocklist.remove(
                guild_id, stored, actor_id=actor_id, at=self._clock.time()
            )
        if stored is None or entries is None:
            raise TermNotBlocked(typed or text)
        self._cache[guild_id] = _compile(entries)
        log.info("guild=%s user=%s removed a blocklist term", guild_id, actor_id)
        return stored

    async def overview(self, guild_id: int) -> BlocklistOverview:
        terms = await self._storage.blocklist.terms(guild_id)
        refusals = await self._storage.blocklist.refusals(guild_id, limit=RECENT_REFUSALS)
        return BlocklistOverview(tuple(terms), tuple(refusals), self._max_terms)

    async def term_texts(self, guild_id: int) -> list[str]:
        """The server's terms as typed, from the cache (for autocomplete: no waiting)."""
        return [term.text for term in (await self._terms(guild_id)).terms]
