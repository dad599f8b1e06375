"""Approval before spending: a server's rule and the requests held for it (migration 0012).

Every end of a wait (approve, deny, expire, cancel) is one conditional UPDATE from
'pending': of two moderators clicking at once, or a click racing the expiry, exactly one
changes the row, and the others read back who did.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from services.approval_models import ApprovalRule, ApprovalState, HeldRequest
from services.models import JobOrigin, VideoRequest
from services.storage.database import DATABASE_ERRORS, Database, Executor, Row, is_duplicate
from services.storage.jobs import stored_request

# What makes the job admission creates for an approved request findable after a restart.
APPROVAL_FINGERPRINT = "approval:{}"

_PLACED = frozenset({"message_id", "alert_channel_id", "alert_message_id", "interaction_token"})


def _rule_from_row(row: Row) -> ApprovalRule:
    return ApprovalRule(
        guild_id=row["guild_id"],
        role_id=row["role_id"],
        expiry_seconds=row["expiry_seconds"],
        set_by=row["set_by"],
        set_at=row["set_at"],
    )


def _held_from_row(row: Row) -> HeldRequest:
    return HeldRequest(
        id=row["id"],
        guild_id=row["guild_id"],
        channel_id=row["channel_id"],
        user_id=row["user_id"],
        role_ids=tuple(json.loads(row["role_ids_json"])),
        # Stored once validated: a later, stricter rule must not make it unreadable.
        request=stored_request(row["request_json"]),
        state=ApprovalState(row["state"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        private=bool(row["private"]),
        parent_job_id=row["parent_job_id"],
        fingerprint=row["fingerprint"],
        interaction_token=row["interaction_token"],
        interaction_created_at=row["interaction_created_at"],
        application_id=row["application_id"],
        upload_limit=row["upload_limit"],
        message_id=row["message_id"],
        alert_channel_id=row["alert_channel_id"],
        alert_message_id=row["alert_message_id"],
        decided_by=row["decided_by"],
        decided_at=row["decided_at"],
        reason=row["reason"],
        job_id=row["job_id"],
        member_told=bool(row["member_told"]),
        card_updated=bool(row["card_updated"]),
    )


class ApprovalStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- the rule ----------------------------------------------------------------------

    async def rule(self, guild_id: int, *, tx: Executor | None = None) -> ApprovalRule | None:
        row = await (tx or self._db).fetchone(
            "SELECT * FROM approval_settings WHERE guild_id = ?", (guild_id,)
        )
        return _rule_from_row(row) if row is not None else None

    async def rules(self) -> list[ApprovalRule]:
        rows = await self._db.fetchall("SELECT * FROM approval_settings")
        return [_rule_from_row(row) for row in rows]

    async def set_rule(self, rule: ApprovalRule, *, tx: Executor) -> None:
        await tx.execute(
            "INSERT INTO approval_settings (guild_id, role_id, expiry_seconds, set_by, set_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (guild_id) DO UPDATE SET"
            " role_id = excluded.role_id, expiry_seconds = excluded.expiry_seconds,"
            " set_by = excluded.set_by, set_at = excluded.set_at",
            (rule.guild_id, rule.role_id, rule.expiry_seconds, rule.set_by, rule.set_at),
        )

    async def clear_rule(self, guild_id: int, *, tx: Executor) -> None:
        await tx.execute("DELETE FROM approval_settings WHERE guild_id = ?", (guild_id,))

    # --- held requests -----------------------------------------------------------------

    async def hold(
        self, request: VideoRequest, origin: JobOrigin, *, now: float, expires_at: float
    ) -> HeldRequest | None:
        """Store a request as pending; nothing about it is a job yet.

        None when this member's same request (its fingerprint) is pending already: the
        partial unique index decides it in the insert itself, so two at once cannot both.
        """
        try:
            request_id = await self._insert_pending(request, origin, now=now, expires_at=expires_at)
        except DATABASE_ERRORS as error:
            if not is_duplicate(error):
                raise
            return None
        held = await self.get(request_id)
        assert held is not None
        return held

    async def _insert_pending(
        self, request: VideoRequest, origin: JobOrigin, *, now: float, expires_at: float
    ) -> int:
        return await self._db.insert(
            "INSERT INTO approval_requests (guild_id, channel_id, user_id, role_ids_json,"
            " request_json, private, parent_job_id, fingerprint, interaction_token,"
            " interaction_created_at, application_id, upload_limit, state, created_at,"
            " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
            (
                origin.guild_id,
                origin.channel_id,
                origin.user_id,
                json.dumps(list(origin.role_ids)),
                json.dumps(request.to_payload()),
                int(origin.private),
                origin.parent_job_id,
                origin.fingerprint,
                origin.interaction_token,
                origin.interaction_created_at,
                origin.application_id,
                origin.upload_limit,
                now,
                expires_at,
            ),
        )

    async def get(self, request_id: int) -> HeldRequest | None:
        row = await self._db.fetchone("SELECT * FROM approval_requests WHERE id = ?", (request_id,))
        return _held_from_row(row) if row is not None else None

    async def place(self, request_id: int, **columns: Any) -> HeldRequest | None:
        """Record where its messages are (the member's, the moderators'), or forget a token."""
        unknown = set(columns) - _PLACED
        if unknown or not columns:
            raise ValueError(f"not a placement column: {sorted(unknown)}")
        assignments = ", ".join(f"{name} = ?" for name in columns)
        await self._db.execute(
            # Column names come from _PLACED only; values are parameters.
            f"UPDATE approval_requests SET {assignments} WHERE id = ?",
            (*columns.values(), request_id),
        )
        return await self.get(request_id)

    async def decide(
        self,
        request_id: int,
        state: ApprovalState,
        *,
        by: int | None,
        now: float,
        reason: str | None = None,
        due_by: float | None = None,
        open_at: float | None = None,
    ) -> bool:
        """End the wait, only if it is still pending (and, with ``due_by``, due by then;
        with ``open_at``, not yet expired then).

        True for the one caller that changed it; everyone else reads back who did.
        """
        sql = (
            "UPDATE approval_requests SET state = ?, decided_by = ?, decided_at = ?, reason = ?"
            " WHERE id = ? AND state = 'pending'"
        )
        params: list[Any] = [state.value, by, now, reason, request_id]
        if due_by is not None:
            sql += " AND expires_at <= ?"
            params.append(due_by)
        if open_at is not None:
            sql += " AND expires_at > ?"
            params.append(open_at)
        return await self._db.execute(sql, params, durable=True) == 1

    async def settle(
        self,
        request_id: int,
        state: ApprovalState,
        *,
        job_id: int | None = None,
        reason: str | None = None,
    ) -> bool:
        """What admission made of an approved request: its job, or why it was refused
        (or could not be started). False: already settled (by another process's recovery,
        or its own flow), and nothing changed."""
        changed = await self._db.execute(
            "UPDATE approval_requests SET state = ?, job_id = ?, reason = COALESCE(?, reason)"
            " WHERE id = ? AND state = 'approved' AND job_id IS NULL",
            (state.value, job_id, reason, request_id),
            durable=True,
        )
        return changed > 0

    async def due(self, now: float, *, limit: int = 100) -> list[HeldRequest]:
        """Pending requests whose time to wait has run out, oldest first."""
        rows = await self._db.fetchall(
            "SELECT * FROM approval_requests WHERE state = 'pending' AND expires_at <= ?"
            " ORDER BY expires_at LIMIT ?",
            (now, limit),
        )
        return [_held_from_row(row) for row in rows]

    async def waiting(
        self, guild_id: int, *, user_id: int | None = None, limit: int = 25
    ) -> list[HeldRequest]:
        """A server's (or one member's) requests still waiting for an answer, oldest first."""
        where, params = "guild_id = ? AND state = 'pending'", [guild_id]
        if user_id is not None:
            where += " AND user_id = ?"
            params.append(user_id)
        rows = await self._db.fetchall(
            f"SELECT * FROM approval_requests WHERE {where} ORDER BY id LIMIT ?", (*params, limit)
        )
        return [_held_from_row(row) for row in rows]

    async def stranded(self) -> list[HeldRequest]:
        """Approved requests that never got their job linked (the process stopped between)."""
        rows = await self._db.fetchall(
            "SELECT * FROM approval_requests WHERE state = 'approved' AND job_id IS NULL"
            " ORDER BY id"
        )
        return [_held_from_row(row) for row in rows]

    async def claim_notices(self, request_id: int, owner: str, *, now: float, until: float) -> bool:
        """Hold telling this request's end for ``owner`` until ``until``; False if another
        process holds it. One conditional UPDATE: only one process wins."""
        changed = await self._db.execute(
            "UPDATE approval_requests SET notice_claimed_by = ?, notice_claimed_until = ?"
            " WHERE id = ? AND (notice_claimed_by = ? OR notice_claimed_until IS NULL"
            " OR notice_claimed_until <= ?)",
            (owner, until, request_id, owner, now),
        )
        return changed > 0

    async def job_id_for(self, held: HeldRequest) -> int | None:
        """The job admission made for this approved request, if it made one (any state)."""
        row = await self._db.fetchone(
            # The member's fingerprint index (jobs_member_fingerprint) finds it.
            "SELECT id FROM jobs WHERE guild_id = ? AND user_id = ? AND fingerprint = ?"
            " ORDER BY id LIMIT 1",
            (held.guild_id, held.user_id, APPROVAL_FINGERPRINT.format(held.id)),
        )
        return int(row["id"]) if row is not None else None

    async def uncarded(self, created_before: float, *, limit: int = 100) -> list[HeldRequest]:
        """Pending requests whose moderators' card was never posted, held before then."""
        rows = await self._db.fetchall(
            "SELECT * FROM approval_requests WHERE state = 'pending'"
            " AND alert_message_id IS NULL AND created_at < ? ORDER BY id LIMIT ?",
            (created_before, limit),
        )
        return [_held_from_row(row) for row in rows]

    async def noted(self, request_id: int, *, member_told: bool, card_updated: bool) -> None:
        """Record that the member was told, or the card updated (never unsets either)."""
        await self._db.execute(
            "UPDATE approval_requests"
            " SET member_told = CASE WHEN ? = 1 THEN 1 ELSE member_told END,"
            " card_updated = CASE WHEN ? = 1 THEN 1 ELSE card_updated END WHERE id = ?",
            (int(member_told), int(card_updated), request_id),
        )

    async def unsettled(
        self,
        *,
        decided_since: float,
        decided_before: float,
        now: float,
        owner: str,
        skip: Collection[int] = (),
        limit: int = 100,
    ) -> list[HeldRequest]:
        """Ended requests whose member or card has not been told, ended in that span.

        Not one approved and still being admitted (no job yet): its flow is under way.
        Nor those in ``skip`` (the caller's backing off from them), left out before the
        limit: else a hundred old ones waiting their turn would hide every newer one. One
        JSON parameter, so the list may be any length.
        """
        skipped: object = json.dumps(sorted(skip))
        not_skipped = "id NOT IN (SELECT value FROM json_each(?))"
        if self._db.dialect == "postgresql":
            skipped, not_skipped = sorted(skip), "id <> ALL(CAST(? AS BIGINT[]))"
        rows = await self._db.fetchall(
            "SELECT * FROM approval_requests WHERE (member_told = 0 OR card_updated = 0)"
            " AND decided_at >= ? AND decided_at < ? AND state != 'pending'"
            " AND NOT (state = 'approved' AND job_id IS NULL)"
            # Not those another process is telling now (it claimed them).
            " AND (notice_claimed_until IS NULL OR notice_claimed_until <= ?"
            " OR notice_claimed_by = ?)"
            f" AND {not_skipped} ORDER BY decided_at, id LIMIT ?",
            (decided_since, decided_before, now, owner, skipped, limit),
        )
        return [_held_from_row(row) for row in rows]
