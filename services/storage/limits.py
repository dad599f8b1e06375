"""Limits and budgets per server: overrides, role limits, server settings, audit, alerts.

Every change goes through ``_change``, which writes the change and its audit entry in
one transaction, so nothing changes without a record of who, what and when.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from services.errors import ValidationError
from services.models import AuditChange, AuditEntry, AuditValue, GuildSettings, LimitOverride
from services.periods import LimitSpec, parse_limit_spec
from services.storage.database import Executor, Row

# Per-user and per-role limits share one shape: (table, id column). Fixed names, never input.
_OVERRIDE_TABLES = {"user": ("user_limits", "user_id"), "role": ("role_limits", "role_id")}
_GUILD_COLUMNS = frozenset(
    {
        "default_count",
        "default_period_seconds",
        "daily_clip_cap",
        "monthly_budget_usd",
        "moderator_role_id",
        "alert_channel_id",
    }
)
_DEFAULT_COLUMNS = ("default_count", "default_period_seconds")


def _override(row: Row) -> LimitOverride:
    return LimitOverride(
        guild_id=row["guild_id"],
        target_id=row[1],
        spec=LimitSpec(row["count"], row["period_seconds"]),
        set_by=row["set_by"],
        set_at=row["set_at"],
    )


def _guild_settings(guild_id: int, row: Row | None) -> GuildSettings:
    if row is None:
        return GuildSettings(guild_id)
    default = None
    if row["default_count"] is not None and row["default_period_seconds"] is not None:
        default = LimitSpec(row["default_count"], row["default_period_seconds"])
    return GuildSettings(
        guild_id=guild_id,
        default_limit=default,
        daily_clip_cap=row["daily_clip_cap"],
        monthly_budget_usd=row["monthly_budget_usd"],
        moderator_role_id=row["moderator_role_id"],
        alert_channel_id=row["alert_channel_id"],
    )


class LimitStore:
    def __init__(self, db: Executor) -> None:
        self._db = db

    @asynccontextmanager
    async def _atomic(self, tx: Executor | None) -> AsyncIterator[Executor]:
        """The caller's transaction, or a new one when the store holds the Database."""
        if tx is not None:
            yield tx
            return
        transaction = getattr(self._db, "transaction", None)
        if transaction is None:  # already a Transaction
            yield self._db
            return
        async with transaction() as own:
            yield own

    # --- audit -----------------------------------------------------------------

    async def audit(
        self,
        guild_id: int,
        *,
        actor_id: int,
        action: str,
        target: str,
        detail: str,
        at: float,
        tx: Executor | None = None,
    ) -> int:
        """Record one change (who, what, when); each change method calls it in its transaction."""
        return await (tx or self._db).insert(
            "INSERT INTO audit_log (guild_id, actor_id, action, target, detail, at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (guild_id, actor_id, action, target, detail, at),
        )

    async def audit_log(
        self, guild_id: int, *, limit: int = 20, offset: int = 0, tx: Executor | None = None
    ) -> list[AuditEntry]:
        """The server's latest changes, newest first."""
        rows = await (tx or self._db).fetchall(
            "SELECT id, guild_id, actor_id, action, target, detail, at FROM audit_log"
            " WHERE guild_id = ? ORDER BY id DESC LIMIT ? OFFSET ?",
            (guild_id, limit, offset),
        )
        return [
            AuditEntry(
                id=row["id"],
                guild_id=row["guild_id"],
                actor_id=row["actor_id"],
                action=row["action"],
                target=row["target"],
                detail=row["detail"],
                at=row["at"],
                changes=read_audit_detail(row["target"], row["detail"]),
            )
            for row in rows
        ]

    # --- reads -----------------------------------------------------------------

    async def guild_settings(self, guild_id: int, *, tx: Executor | None = None) -> GuildSettings:
        row = await (tx or self._db).fetchone(
            "SELECT * FROM guild_settings WHERE guild_id = ?", (guild_id,)
        )
        return _guild_settings(guild_id, row)

    async def user_limit(
        self, guild_id: int, user_id: int, *, tx: Executor | None = None
    ) -> LimitOverride | None:
        return await self._override("user", guild_id, user_id, tx or self._db)

    async def user_limits(
        self, guild_id: int, *, tx: Executor | None = None
    ) -> list[LimitOverride]:
        """Every member override on the server, by user id."""
        rows = await (tx or self._db).fetchall(
            "SELECT guild_id, user_id, count, period_seconds, set_by, set_at FROM user_limits"
            " WHERE guild_id = ? ORDER BY user_id",
            (guild_id,),
        )
        return [_override(row) for row in rows]

    async def user_limits_of(
        self, guild_id: int, user_ids: Sequence[int], *, tx: Executor | None = None
    ) -> dict[int, LimitOverride]:
        """The overrides of these members on the server, by user id: one read for many."""
        ids = sorted({int(u) for u in user_ids})
        if not ids:
            return {}
        rows = await (tx or self._db).fetchall(
            "SELECT guild_id, user_id, count, period_seconds, set_by, set_at FROM user_limits"
            f" WHERE guild_id = ? AND user_id IN ({','.join('?' * len(ids))})",
            [guild_id, *ids],
        )
        return {row["user_id"]: _override(row) for row in rows}

    async def role_limits(
        self,
        guild_id: int,
        role_ids: Sequence[int] | None = None,
        *,
        tx: Executor | None = None,
    ) -> list[LimitOverride]:
        """Role limits on the server; only those of ``role_ids`` when given."""
        sql = (
            "SELECT guild_id, role_id, count, period_seconds, set_by, set_at FROM role_limits"
            " WHERE guild_id = ?"
        )
        params: list[Any] = [guild_id]
        if role_ids is not None:
            ids = sorted({int(r) for r in role_ids})
            if not ids:
                return []
            sql += f" AND role_id IN ({','.join('?' * len(ids))})"
            params.extend(ids)
        rows = await (tx or self._db).fetchall(sql + " ORDER BY role_id", params)
        return [_override(row) for row in rows]

    # --- changes (each one audited) ----------------------------------------------

    async def set_user_limit(
        self,
        guild_id: int,
        user_id: int,
        spec: LimitSpec,
        *,
        actor_id: int,
        at: float,
        tx: Executor | None = None,
    ) -> LimitOverride | None:
        """Set a member's override; returns the previous one."""
        return await self._set_override("user", guild_id, user_id, spec, actor_id, at, tx)

    async def clear_user_limit(
        self, guild_id: int, user_id: int, *, actor_id: int, at: float, tx: Executor | None = None
    ) -> LimitOverride | None:
        """Remove a member's override; returns what was removed (None: nothing was set)."""
        return await self._set_override("user", guild_id, user_id, None, actor_id, at, tx)

    async def set_role_limit(
        self,
        guild_id: int,
        role_id: int,
        spec: LimitSpec,
        *,
        actor_id: int,
        at: float,
        tx: Executor | None = None,
    ) -> LimitOverride | None:
        """Set a role's limit; returns the previous one."""
        return await self._set_override("role", guild_id, role_id, spec, actor_id, at, tx)

    async def clear_role_limit(
        self, guild_id: int, role_id: int, *, actor_id: int, at: float, tx: Executor | None = None
    ) -> LimitOverride | None:
        """Remove a role's limit; returns what was removed (None: nothing was set)."""
        return await self._set_override("role", guild_id, role_id, None, actor_id, at, tx)

    async def _set_override(
        self,
        kind: str,
        guild_id: int,
        target_id: int,
        spec: LimitSpec | None,
        actor_id: int,
        at: float,
        tx: Executor | None,
    ) -> LimitOverride | None:
        """Set (or with ``spec`` None, remove) a user's or role's limit, audited, atomically."""
        table, column = _OVERRIDE_TABLES[kind]
        async with self._atomic(tx) as ex:
            previous = await self._override(kind, guild_id, target_id, ex)
            if (previous.spec if previous else None) == spec:
                return previous  # nothing changes, so nothing is written or recorded
            if spec is None:
                await ex.execute(
                    f"DELETE FROM {table} WHERE guild_id = ? AND {column} = ?",
                    (guild_id, target_id),
                )
            else:
                await ex.execute(
                    f"INSERT INTO {table}"
                    f" (guild_id, {column}, count, period_seconds, set_by, set_at)"
                    f" VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (guild_id, {column}) DO UPDATE SET"
                    " count = excluded.count, period_seconds = excluded.period_seconds,"
                    " set_by = excluded.set_by, set_at = excluded.set_at",
                    (guild_id, target_id, spec.count, spec.period_seconds, actor_id, at),
                )
            await self.audit(
                guild_id,
                actor_id=actor_id,
                action=f"{'set' if spec else 'clear'}_{kind}_limit",
                target=f"{kind}:{target_id}",
                detail=_change_detail(spec, previous.spec if previous else None),
                at=at,
                tx=ex,
            )
            return previous

    async def _override(
        self, kind: str, guild_id: int, target_id: int, ex: Executor
    ) -> LimitOverride | None:
        table, column = _OVERRIDE_TABLES[kind]
        row = await ex.fetchone(
            f"SELECT guild_id, {column}, count, period_seconds, set_by, set_at FROM {table}"
            f" WHERE guild_id = ? AND {column} = ?",
            (guild_id, target_id),
        )
        return _override(row) if row else None

    async def update_guild_settings(
        self,
        guild_id: int,
        *,
        actor_id: int,
        at: float,
        action: str,
        tx: Executor | None = None,
        **values: Any,
    ) -> GuildSettings:
        """Change some of a server's settings (None unsets); returns the settings before.

        Values that are already so are left out; when nothing changes, nothing is recorded.
        """
        unknown = set(values) - _GUILD_COLUMNS
        if unknown or not values:
            raise ValueError(f"not a server setting: {sorted(unknown) or 'nothing given'}")
        async with self._atomic(tx) as ex:
            before = await self.guild_settings(guild_id, tx=ex)
            values = _changed_values(before, values)
            if not values:
                return before
            await ex.execute(
                "INSERT INTO guild_settings (guild_id, updated_at) VALUES (?, ?)"
                " ON CONFLICT (guild_id) DO NOTHING",
                (guild_id, at),
            )
            assignments = ", ".join(f"{name} = :{name}" for name in sorted(values))
            await ex.execute(
                f"UPDATE guild_settings SET {assignments}, updated_at = :updated_at"
                " WHERE guild_id = :guild_id",
                {**values, "updated_at": at, "guild_id": guild_id},
            )
            await self.audit(
                guild_id,
                actor_id=actor_id,
                action=action,
                target="server",
                detail=_settings_detail(before, values),
                at=at,
                tx=ex,
            )
            return before

    # --- alerts ----------------------------------------------------------------------

    async def mark_alert_sent(
        self, guild_id: int, key: str, *, at: float, tx: Executor | None = None
    ) -> bool:
        """Remember an alert; True only the first time for this server and key."""
        changed = await (tx or self._db).execute(
            "INSERT INTO alerts_sent (guild_id, key, sent_at) VALUES (?, ?, ?)"
            " ON CONFLICT (guild_id, key) DO NOTHING",
            (guild_id, key, at),
        )
        return changed == 1


# The audit detail is stored as text and read back by read_audit_detail(): rows written
# since the first release use this same format, so every stored entry can be shown in words.


def read_audit_detail(target: str, detail: str) -> tuple[AuditChange, ...] | None:
    """What an audit entry changed, read back from its stored ``detail``; None if unreadable."""
    try:
        if target.partition(":")[0] in _OVERRIDE_TABLES:
            return (_parse_change("limit", detail),)
        if target == "server" and detail:
            return tuple(_parse_change(*part.split(": ", 1)) for part in detail.split(", "))
    except (TypeError, ValueError, ValidationError):
        pass
    return None


def _change_detail(new: LimitSpec | None, old: LimitSpec | None) -> str:
    return f"{_show(old)} -> {_show(new)}"


def _show(value: Any) -> str:
    return "unset" if value is None else str(value)


def _parse_change(setting: str, detail: str) -> AuditChange:
    before, after = detail.split(" -> ")
    return AuditChange(setting, _parse_value(setting, before), _parse_value(setting, after))


def _parse_value(setting: str, text: str) -> AuditValue:
    if text == "unset":
        return None
    if setting in ("limit", "default"):
        return parse_limit_spec(text)
    if setting == "monthly_budget_usd":
        return float(text)
    return int(text)


def _changed_values(before: GuildSettings, values: dict[str, Any]) -> dict[str, Any]:
    """The values that differ from ``before``; the default's count and period go together."""
    old = _settings_columns(before)
    changed = {name: value for name, value in values.items() if old[name] != value}
    if changed.keys() & set(_DEFAULT_COLUMNS):
        changed.update({name: values[name] for name in _DEFAULT_COLUMNS if name in values})
    return changed


def _settings_detail(before: GuildSettings, values: dict[str, Any]) -> str:
    """`default: 3/1d -> 5/1d` for the default limit, `column: old -> new` for the rest."""
    values = dict(values)
    old = _settings_columns(before)
    parts = []
    if values.keys() & set(_DEFAULT_COLUMNS):
        count = values.pop("default_count", old["default_count"])
        period = values.pop("default_period_seconds", old["default_period_seconds"])
        after = LimitSpec(count, period) if count is not None and period is not None else None
        parts.append(f"default: {_change_detail(after, before.default_limit)}")
    parts += [f"{name}: {_show(old[name])} -> {_show(values[name])}" for name in sorted(values)]
    return ", ".join(parts)


def _settings_columns(settings: GuildSettings) -> dict[str, Any]:
    default = settings.default_limit
    return {
        "default_count": default.count if default else None,
        "default_period_seconds": default.period_seconds if default else None,
        "daily_clip_cap": settings.daily_clip_cap,
        "monthly_budget_usd": settings.monthly_budget_usd,
        "moderator_role_id": settings.moderator_role_id,
        "alert_channel_id": settings.alert_channel_id,
    }
