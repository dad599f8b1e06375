"""A server's blocklist terms and the prompts they refused (migration 0010).

Each change to the terms is written with its audit entry in one transaction, so
`/videolimit history` shows every term added or removed, by whom and when.
"""

from __future__ import annotations

from collections.abc import Callable

from services.blocklist_terms import BlocklistFull, TermAlreadyBlocked
from services.models import BlockedPrompt, BlocklistEntry
from services.storage.database import Database, Executor, Row
from services.storage.limits import LimitStore

ADD_ACTION = "add_blocklist_term"
REMOVE_ACTION = "remove_blocklist_term"
AUDIT_TARGET = "blocklist"


def _entry(row: Row) -> BlocklistEntry:
    return BlocklistEntry(row["guild_id"], row["term"], row["added_by"], row["added_at"])


class BlocklistStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._audit = LimitStore(db)  # the one audit log every /videolimit change goes to

    async def terms(self, guild_id: int, *, tx: Executor | None = None) -> list[BlocklistEntry]:
        """The server's terms, oldest first."""
        rows = await (tx or self._db).fetchall(
            "SELECT guild_id, term, added_by, added_at FROM blocklist_terms WHERE guild_id = ?",
            (guild_id,),
        )
        # Sorted here, not by ORDER BY: PostgreSQL orders text by the database's collation
        # (often a language's), SQLite by code point, as Python does on every engine.
        return sorted((_entry(row) for row in rows), key=lambda e: (e.added_at, e.term))

    async def add(
        self,
        guild_id: int,
        term: str,
        *,
        actor_id: int,
        at: float,
        max_terms: int,
        same_as: Callable[[str], bool],
    ) -> list[BlocklistEntry]:
        """Add a term, audited; returns the server's terms after the change.

        Checked inside the transaction, so two moderators at once cannot both pass: raises
        TermAlreadyBlocked when a stored term is ``same_as`` this one, BlocklistFull when
        the server already has ``max_terms``.
        """
        async with self._db.transaction() as tx:
            before = await self.terms(guild_id, tx=tx)
            existing = next((e.term for e in before if same_as(e.term)), None)
            if existing is not None:
                raise TermAlreadyBlocked(existing)
            if len(before) >= max_terms:
                raise BlocklistFull(max_terms)
            await tx.execute(
                "INSERT INTO blocklist_terms (guild_id, term, added_by, added_at)"
                " VALUES (?, ?, ?, ?)",
                (guild_id, term, actor_id, at),
            )
            await self._audit.audit(
                guild_id,
                actor_id=actor_id,
                action=ADD_ACTION,
                target=AUDIT_TARGET,
                detail=term,
                at=at,
                tx=tx,
            )
            return [*before, BlocklistEntry(guild_id, term, actor_id, at)]

    async def remove(
        self, guild_id: int, term: str, *, actor_id: int, at: float
    ) -> list[BlocklistEntry] | None:
        """Remove a term (exactly as stored), audited; None when it was not there."""
        async with self._db.transaction() as tx:
            removed = await tx.execute(
                "DELETE FROM blocklist_terms WHERE guild_id = ? AND term = ?", (guild_id, term)
            )
            if not removed:
                return None
            await self._audit.audit(
                guild_id,
                actor_id=actor_id,
                action=REMOVE_ACTION,
                target=AUDIT_TARGET,
                detail=term,
                at=at,
                tx=tx,
            )
            return await self.terms(guild_id, tx=tx)

    async def record_refusal(
        self,
        guild_id: int,
        channel_id: int,
        user_id: int,
        term: str,
        *,
        at: float,
        timed_out: bool = False,
    ) -> int:
        """Remember a refused request for moderators; returns its id."""
        return await self._db.insert(
            "INSERT INTO blocked_prompts (guild_id, channel_id, user_id, term, at, timed_out)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (guild_id, channel_id, user_id, term, at, int(timed_out)),
        )

    async def refusals(self, guild_id: int, *, limit: int = 20) -> list[BlockedPrompt]:
        """The server's latest refusals, newest first."""
        rows = await self._db.fetchall(
            "SELECT id, guild_id, channel_id, user_id, term, at, timed_out FROM blocked_prompts"
            " WHERE guild_id = ? ORDER BY id DESC LIMIT ?",
            (guild_id, limit),
        )
        return [
            BlockedPrompt(
                id=row["id"],
                guild_id=row["guild_id"],
                channel_id=row["channel_id"],
                user_id=row["user_id"],
                term=row["term"],
                at=row["at"],
                timed_out=bool(row["timed_out"]),
            )
            for row in rows
        ]
