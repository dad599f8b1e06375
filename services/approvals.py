"""Approval before spending: which requests wait for a moderator, and their answers.

A held request is not a job: nothing is counted or billed until a moderator approves
it, and then it goes through admission like any new request (limits, budgets and the
operator's ceiling as they stand then). Every end of a wait is one atomic change from
'pending', so a double click, two moderators at once, or a click racing the expiry
decide it exactly once; the losers are told who won.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Collection
from dataclasses import dataclass

from services.admission import LimitReached, MemberBlocked
from services.approval_models import (
    DEFAULT_EXPIRY_SECONDS,
    MAX_EXPIRY_SECONDS,
    MIN_EXPIRY_SECONDS,
    ApprovalChange,
    ApprovalRule,
    ApprovalState,
    HeldRequest,
)
from services.clock import Clock
from services.errors import BotError, RefusedError, ValidationError
from services.job_leases import process_name
from services.limits import MemberUsage
from services.models import Job, JobOrigin, VideoRequest
from services.periods import format_period, parse_period
from services.storage import Storage
from services.storage.approvals import APPROVAL_FINGERPRINT

log = logging.getLogger(__name__)

REASON_MAX = 300  # a denial's reason, as the moderators' form takes it
MODES = ("off", "required")


class AlreadyDecided(BotError):
    """Someone else ended this wait first; ``held`` says who, how and when.

    ``expired_now``: it was past its time when answered, and this call expired it, so the
    caller tells the member (the expiry sweep will not: the row is no longer pending).
    """

    def __init__(self, held: HeldRequest, *, expired_now: bool = False) -> None:
        super().__init__(
            "This request was already answered.", detail=f"approval={held.id} {held.state.value}"
        )
        self.held = held
        self.expired_now = expired_now


class UnknownRequest(BotError):
    """The button names a request this database does not hold (or another server's)."""

    user_message = "That request is no longer known to me."


class AlreadyWaiting(RefusedError):
    """The member asked for this same video a moment ago and it is waiting already."""

    def __init__(self) -> None:
        super().__init__(
            "This same request is already waiting for a moderator's approval; "
            "nothing more was asked."
        )


def parse_expiry(text: str | None) -> int:
    """Seconds a request may wait, from `30m`, `2h`, `1d`; within 5 minutes to 7 days."""
    if text is None:
        return DEFAULT_EXPIRY_SECONDS
    seconds = parse_period(text.strip())
    if not MIN_EXPIRY_SECONDS <= seconds <= MAX_EXPIRY_SECONDS:
        raise ValidationError(
            f"`expires` must be from {format_period(MIN_EXPIRY_SECONDS)} to "
            f"{format_period(MAX_EXPIRY_SECONDS)}, like `30m`, `2h` or `1d`."
        )
    return seconds


def check_limit_now(usage: MemberUsage) -> None:
    """Refuse as admission would if the member has no clip left right now.

    Read-only: a member out of clips is told at once, not after a moderator approved.
    """
    if usage.limit.blocked:
        raise MemberBlocked(usage.limit)
    if usage.window.remaining == 0:
        next_free = usage.window.next_free_at
        assert next_free is not None  # only a blocked limit has none
        raise LimitReached(usage.limit, used=usage.window.used, next_free_at=next_free)


class Approvals:
    def __init__(self, storage: Storage, clock: Clock, owner: str | None = None) -> None:
        self._storage = storage
        self._clock = clock
        # This process, as the holder of a claim on telling a request's end.
        self.owner = owner or process_name()
        # Every request asks for its server's rule before it is acknowledged, so the rules
        # are kept in memory (written through by ``configure``): a busy database must not
        # hold up the 3-second answer. Another process sharing the database may change one
        # (a server's shard moved there): the approval sweep reads them all again.
        self._rules: dict[int, ApprovalRule | None] = {}
        self._loaded = False
        self._written = 0  # rules changed here: a read begun before one must not undo it

    async def load(self) -> None:
        """Read every server's rule: at start-up, and again from every approval sweep."""
        written = self._written
        rules: dict[int, ApprovalRule | None] = {
            rule.guild_id: rule for rule in await self._storage.approvals.rules()
        }
        if written == self._written:
            self._rules = rules
            self._loaded = True

    # --- the rule --------------------------------------------------------------------

    async def rule(self, guild_id: int) -> ApprovalRule | None:
        """The server's rule; None while approval is off."""
        if guild_id in self._rules:
            return self._rules[guild_id]
        if self._loaded:
            return None  # every rule was read at start-up; later ones are written through
        rule = await self._storage.approvals.rule(guild_id)
        self._rules[guild_id] = rule
        return rule

    async def required(self, origin: JobOrigin) -> bool:
        """True when this member's request must wait for a moderator's approval.

        Whether a moderator is exempt is the caller's to decide (it knows their permissions).
        """
        rule = await self.rule(origin.guild_id)
        return rule is not None and not rule.exempts(tuple(origin.role_ids))

    async def configure(
        self,
        guild_id: int,
        *,
        mode: str | None,
        role_id: int | None,
        expires: str | None,
        actor_id: int,
    ) -> ApprovalChange:
        """Turn approval on (``required``) or ``off``; with nothing given, only show it.

        A role or expiry alone changes that part of a rule already on. Audited, in the same
        transaction as the change, so `/videolimit history` shows it.
        """
        if mode is not None and mode not in MODES:
            raise ValidationError("`mode` must be `off` or `required`.")
        expiry = parse_expiry(expires) if expires is not None else None
        now = self._clock.time()
        store = self._storage.approvals
        async with self._storage.db.transaction() as tx:
            before = await store.rule(guild_id, tx=tx)
            if mode is None and role_id is None and expiry is None:
                return ApprovalChange(before, before)
            if mode == "off":
                if role_id is not None or expiry is not None:
                    raise ValidationError(
                        "With `mode: off` nothing waits for approval: leave out `role` "
                        "and `expires`."
                    )
                after: ApprovalRule | None = None
            elif mode is None and before is None:
                raise ValidationError(
                    "Approval is off: add `mode: required` to turn it on with that role or expiry."
                )
            else:
                kept = before
                after = ApprovalRule(
                    guild_id=guild_id,
                    role_id=role_id if role_id is not None or mode else kept_role(kept),
                    expiry_seconds=expiry
                    or (kept.expiry_seconds if kept else None)
                    or DEFAULT_EXPIRY_SECONDS,
                    set_by=actor_id,
                    set_at=now,
                )
            change = ApprovalChange(before, after)
            if not change.changed:
                return change
            if after is None:
                await store.clear_rule(guild_id, tx=tx)
            else:
                await store.set_rule(after, tx=tx)
            await self._storage.limits.audit(
                guild_id,
                actor_id=actor_id,
                action=AUDIT_ACTION,
                target="server",
                detail=audit_detail(change),
                at=now,
                tx=tx,
            )
        self._rules[guild_id] = after  # once committed
        self._written += 1
        log.info("guild=%s approval set by user=%s: %s", guild_id, actor_id, audit_detail(change))
        return change

    # --- holding and answering ----------------------------------------------------------

    async def hold(
        self, request: VideoRequest, origin: JobOrigin, usage: MemberUsage
    ) -> HeldRequest:
        """Store a request as waiting, after the checks that would refuse it anyway."""
        check_limit_now(usage)
        store = self._storage.approvals
        rule = await store.rule(origin.guild_id)
        expiry = rule.expiry_seconds if rule is not None else DEFAULT_EXPIRY_SECONDS
        now = self._clock.time()
        # The check and the insert are one statement (a unique index on pending rows):
        # two interactions of the same request at once cannot both wait.
        held = await store.hold(request, origin, now=now, expires_at=now + expiry)
        if held is None:
            raise AlreadyWaiting()
        log.info(
            "approval=%s held guild=%s user=%s until=%s",
            held.id,
            held.guild_id,
            held.user_id,
            int(held.expires_at),
        )
        return held

    async def get(self, request_id: int, guild_id: int | None) -> HeldRequest:
        """The request a button names, if it is this server's (None: the caller checks)."""
        held = await self._storage.approvals.get(request_id)
        if held is None or (guild_id is not None and held.guild_id != guild_id):
            raise UnknownRequest()
        return held

    async def waiting(self, guild_id: int, user_id: int | None = None) -> list[HeldRequest]:
        """Requests of the server (or of one member) still waiting for a moderator, read now.

        Past their time but not yet swept, a request is no longer waiting: left out.
        """
        now = self._clock.time()
        held = await self._storage.approvals.waiting(guild_id, user_id=user_id)
        return [request for request in held if request.expires_at > now]

    async def place(self, request_id: int, **columns: int | str | None) -> HeldRequest | None:
        """Where its messages are (``message_id``, ``alert_channel_id``, ``alert_message_id``)."""
        return await self._storage.approvals.place(request_id, **columns)

    async def decide(
        self,
        held: HeldRequest,
        state: ApprovalState,
        *,
        by: int | None,
        reason: str | None = None,
    ) -> HeldRequest:
        """End the wait (approve, deny, cancel); AlreadyDecided if someone else did first,
        or if it had expired (then expired here, if the sweep has not yet)."""
        if reason is not None:
            reason = reason.strip()[:REASON_MAX] or None
        store, now = self._storage.approvals, self._clock.time()
        # Only while it has not expired: an answer after the expiry time must not go
        # through just because the sweep has not run yet.
        won = await store.decide(held.id, state, by=by, now=now, reason=reason, open_at=now)
        current = await store.get(held.id)
        assert current is not None
        if not won:
            expired_now = False
            if current.state is ApprovalState.PENDING:  # lost to its expiry time alone
                expired_now = await store.decide(
                    held.id, ApprovalState.EXPIRED, by=None, now=now, due_by=now
                )
                if expired_now:
                    log.info("approval=%s expired unanswered guild=%s", held.id, held.guild_id)
                current = await store.get(held.id) or current
            raise AlreadyDecided(current, expired_now=expired_now)
        log.info("approval=%s %s by user=%s", held.id, state.value, by)
        return current

    async def admitted(self, held: HeldRequest, job: Job) -> Job:
        """The approved request's job exists: it takes over the member's waiting message."""
        await self._storage.approvals.settle(held.id, ApprovalState.APPROVED, job_id=job.id)
        if held.message_id is None:
            return job
        return await self._storage.jobs.update(
            job.id, now=self._clock.time(), message_id=held.message_id
        )

    async def refused(self, held: HeldRequest, reason: str) -> None:
        """Approved, but admission refused it then: nothing was stored as a job."""
        await self._storage.approvals.settle(held.id, ApprovalState.REFUSED, reason=reason)

    async def failed(self, held: HeldRequest, reason: str) -> None:
        """Approved, but the bot could not start it (its own error): nothing was stored."""
        await self._storage.approvals.settle(held.id, ApprovalState.FAILED, reason=reason)

    async def recover(self) -> list[tuple[HeldRequest, Job | None]]:
        """Every approved request whose job was never linked: at start-up, before the runner,
        and again from the approval sweep.

        One without any job is ended only once approved ``STRANDED_AFTER_SECONDS`` ago:
        another process may be admitting it right now (its Approve takes a second or two),
        and ending it here would fail a request about to run; a later sweep ends it. Each
        link or ending is one conditional write, so of two processes recovering at once only
        one acts (and only its caller tells the member).

        The process stopped between the approval and the link. If admission made its job
        (found by its ``approval:N`` fingerprint), the job is linked and takes over the
        member's message, so the runner resumes it on that message. If it made none, the
        request ends as failed rather than admitted again: the moderator approved it against
        the limits as they stood then, the member's interaction may be long gone, and ending
        it costs nothing; the caller tells the member to ask again. Never two jobs.

        A job found already ended without ever reaching Segmind (no request id: admission
        withdrew it because Approve's handler was cancelled after its answer) never ran and
        never will: linking it would leave the member's message saying "waiting" for good,
        so the request ends as failed, as if no job had been made.
        """
        store = self._storage.approvals
        recovered: list[tuple[HeldRequest, Job | None]] = []
        approved_before = self._clock.time() - STRANDED_AFTER_SECONDS
        for held in await store.stranded():
            job_id = await store.job_id_for(held)
            if job_id is None and (held.decided_at or 0.0) > approved_before:
                continue  # perhaps being admitted by another process: a later sweep decides
            job = await self._storage.jobs.get(job_id) if job_id is not None else None
            if job is not None and job.state.is_terminal and job.request_id is None:
                log.warning(
                    "approval=%s its job=%s ended unsent (%s); request ended",
                    held.id,
                    job.id,
                    job.state.value,
                )
                job = None
            if job is not None:
                if not await store.settle(held.id, ApprovalState.APPROVED, job_id=job.id):
                    continue  # another process linked or ended it meanwhile
                if job.message_id is None and held.message_id is not None:
                    job = await self._storage.jobs.update(
                        job.id, now=self._clock.time(), message_id=held.message_id
                    )
                log.info("approval=%s linked to its job=%s after a restart", held.id, job.id)
            else:
                if not await store.settle(held.id, ApprovalState.FAILED, reason=RESTART_REASON):
                    continue
                log.warning("approval=%s approved but never admitted; ended", held.id)
            recovered.append((await store.get(held.id) or held, job))
        return recovered

    async def claim_notices(self, held: HeldRequest) -> bool:
        """This process tells how ``held`` ended for the next ``NOTICE_CLAIM_SECONDS``;
        False: another process's sweep is telling it."""
        now = self._clock.time()
        return await self._storage.approvals.claim_notices(
            held.id, self.owner, now=now, until=now + NOTICE_CLAIM_SECONDS
        )

    async def uncarded(self, created_before: float) -> list[HeldRequest]:
        """Pending requests whose moderators' card was never posted (held before a restart)."""
        return await self._storage.approvals.uncarded(created_before)

    async def expire_due(self) -> list[HeldRequest]:
        """Expire every request past its time; returns those this call expired."""
        now = self._clock.time()
        expired: list[HeldRequest] = []
        store = self._storage.approvals
        for held in await store.due(now):
            if await store.decide(held.id, ApprovalState.EXPIRED, by=None, now=now, due_by=now):
                log.info("approval=%s expired unanswered guild=%s", held.id, held.guild_id)
                current = await store.get(held.id)
                expired.append(current or held)
        return expired

    async def noted(
        self, held: HeldRequest, *, member_told: bool = False, card_updated: bool = False
    ) -> None:
        """The member was told how it ended (or cannot be), or the card says it."""
        await self._storage.approvals.noted(
            held.id, member_told=member_told, card_updated=card_updated
        )

    async def unsettled(
        self, *, grace: float, skip: Collection[int] = (), limit: int = 100
    ) -> list[HeldRequest]:
        """Ended requests whose notices Discord did not take, for the sweep to try again.

        Ended at least ``grace`` ago (an answer's own flow is telling it meanwhile), and
        within ``NOTICE_RETRY_SECONDS``: after that a notice is stale, and is given up.
        ``skip``: those the sweep is backing off from, left out by the read itself.
        """
        now = self._clock.time()
        return await self._storage.approvals.unsettled(
            decided_since=now - NOTICE_RETRY_SECONDS,
            decided_before=now - grace,
            now=now,
            owner=self.owner,
            skip=skip,
            limit=limit,
        )


NOTICE_RETRY_SECONDS = 24 * 3600.0
# Longer than one telling (a member's message and a card, discord.py's retries included).
NOTICE_CLAIM_SECONDS = 300.0
# Longer than any Approve takes from the decision to the job's link.
STRANDED_AFTER_SECONDS = 120.0
RESTART_REASON = "The bot restarted before it could start this approved request."


def admission_origin(held: HeldRequest, role_ids: tuple[int, ...]) -> JobOrigin:
    """The origin admission takes for an approved request.

    The member's roles as they are now (they may have changed while it waited), and the
    fingerprint ``approval:N``: a restart finds request N's job by it, and admission's own
    duplicate check makes a second job for the same approval impossible.
    """
    return dataclasses.replace(
        held.origin(), role_ids=role_ids, fingerprint=APPROVAL_FINGERPRINT.format(held.id)
    )


def kept_role(rule: ApprovalRule | None) -> int | None:
    return rule.role_id if rule is not None else None


AUDIT_ACTION = "set_approval"
_STORED_RULE = r"off|required role=(?:\d+|none) expiry=\d+"
_STORED_CHANGE = re.compile(rf"(?P<after>{_STORED_RULE}); was (?P<before>{_STORED_RULE})")


@dataclass(frozen=True, slots=True)
class AuditedRule:
    """An approval rule as its history entry keeps it: the exempt role and the longest wait."""

    role_id: int | None  # None: every member's request waits
    expiry_seconds: int


def audit_detail(change: ApprovalChange) -> str:
    """`required role=5 expiry=3600; was off`: data, which `/videolimit history` words.

    No `: ` in it, so ``read_audit_detail`` never takes it for a settings column.
    """

    def stored(rule: ApprovalRule | None) -> str:
        if rule is None:
            return "off"
        role = "none" if rule.role_id is None else rule.role_id
        return f"required role={role} expiry={rule.expiry_seconds}"

    return f"{stored(change.after)}; was {stored(change.before)}"


def read_audit_detail(detail: str) -> tuple[AuditedRule | None, AuditedRule | None] | None:
    """The rule before and after, from ``audit_detail``'s text; None when it is not that."""
    match = _STORED_CHANGE.fullmatch(detail.strip())
    if match is None:
        return None

    def rule(text: str) -> AuditedRule | None:
        if text == "off":
            return None
        role, expiry = (part.split("=", 1)[1] for part in text.removeprefix("required ").split())
        return AuditedRule(None if role == "none" else int(role), int(expiry))

    return rule(match["before"]), rule(match["after"])
