"""The gate every new job passes before anything is acknowledged, submitted or billed.

A repeat of a request made moments ago (a double click), the member's limit, the
server's daily clip cap and monthly budget, the operator's daily spending ceiling across
all servers, and the credit gate are checked and the job is stored in ONE transaction:
the database lock is held from the first read to the insert, so ten quick requests under
a limit of 3 give exactly 3 jobs, and two clicks at once give one. A refusal writes
nothing, except the note that moderators (or the operator) were told about a reached
budget or ceiling, so they are told once per day or month.

Requests that arrive together (a burst of /video) are decided one after another in the
same transaction, up to 64 at a time, and committed once; each caller still gets its own
job or refusal, and one request's unexpected error is its own.

The server's caps and the operator's ceiling, and their notes, are ``services.spend_caps``.
Each job is reserved at an honest upper estimate, CLIP_COST_USD or what Segmind lately
charged for a clip of its size if more (``services.reported_cost``), read once per batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, replace

from services.clock import Clock
from services.errors import RefusedError
from services.gates import AccountGates
from services.limits import EffectiveLimit, resolve_limit, window_start, window_usage
from services.models import GuildSettings, Job, JobOrigin, JobState, VideoRequest
from services.periods import LimitSpec
from services.reported_cost import PriceKind, recent_prices, reservation_usd
from services.spend_caps import SpendCaps
from services.storage import NewJob, Storage
from services.storage.database import Transaction

log = logging.getLogger(__name__)

# The same request from the same member this soon after the first is a double click (or a
# command sent twice), answered with the first job instead of billed again.
DUPLICATE_WINDOW_SECONDS = 10.0
# Requests decided in one transaction at most: the lock is held for one batch, not a burst.
BATCH_LIMIT = 64

_MemberKey = tuple[int, int, tuple[int, ...]]  # server, member, the member's roles
_MemberLimit = tuple[GuildSettings, EffectiveLimit]


@dataclass(frozen=True)
class Admitted:
    """A job that passed: stored as QUEUED and counted from now on."""

    job: Job  # stored, state QUEUED, cost_usd = its reservation
    limit: EffectiveLimit
    used: int  # counted uses in the window, including this one
    remaining: int  # what is left in the window after this one
    cost_usd: float  # what this request spends


class MemberBlocked(RefusedError):
    """The member's effective limit is 0 clips: ``limit`` says whose limit that is."""

    def __init__(self, limit: EffectiveLimit) -> None:
        super().__init__(
            "You are blocked from making videos here.",
            detail=f"blocked by {limit.source} limit",
        )
        self.limit = limit


class LimitReached(RefusedError):
    """The member used every clip of ``limit`` in its window; one frees at ``next_free_at``."""

    def __init__(self, limit: EffectiveLimit, *, used: int, next_free_at: float) -> None:
        super().__init__(
            "You have reached your video limit for now.",
            retry_at=next_free_at,
            detail=f"limit {limit.spec} from {limit.source} used={used}",
        )
        self.limit = limit
        self.used = used
        self.next_free_at = next_free_at


class DuplicateRequest(RefusedError):
    """The member made this same request moments ago; the job it made is named here.

    Nothing is stored, billed or counted for the repeat: ``job_id`` is the earlier job, its
    progress message is ``message_id`` in ``channel_id`` (None until it is posted).
    """

    def __init__(self, earlier: Job) -> None:
        super().__init__(
            "You just asked for this same video; it is made once, and nothing more is spent.",
            detail=f"repeat of job={earlier.id}",
        )
        self.job_id = earlier.id
        self.guild_id = earlier.guild_id
        self.channel_id = earlier.channel_id
        self.message_id = earlier.message_id
        self.private = earlier.private


@dataclass(eq=False)
class _Waiting:
    """One request in line for a batch, and where its answer goes."""

    new: NewJob
    role_ids: tuple[int, ...]
    outcome: asyncio.Future[Admitted]
    taken: bool = False  # in a running batch: too late to just leave the line
    gone: bool = False  # its caller was cancelled and no longer waits


@dataclass(eq=False)
class _Usage:
    """A member's counted uses in a batch: read once, then each admission added to it.

    Inside the batch's transaction only admission writes jobs, so this is what reading
    them again before each decision would give.
    """

    times: list[float] | None = None  # creation times since ``since``; None until read
    since: float = 0.0


@dataclass(eq=False)
class _Prices:
    """What Segmind lately charged per clip size, read at most once per batch.

    Only admission writes jobs inside the batch's transaction, and never a reported cost,
    so a second read would find the same.
    """

    by_kind: dict[PriceKind, float] | None = None  # None until read


class _TransactionLost(Exception):
    """The engine gave up the batch's transaction after an error: nothing in it was kept.

    SQLite does after a few errors; PostgreSQL after any failed statement outside a savepoint.
    """

    def __init__(self, failed: _Waiting) -> None:
        super().__init__("the batch's transaction was rolled back")
        self.failed = failed  # the request that met the error, answered with it


class Admission:
    """Admits requests in batches: those that arrive together share one transaction.

    Under a burst the time goes to round trips to the database (SQLite's thread or the
    PostgreSQL server), and to queueing on its write lock one transaction at a time. A
    batch of up to ``batch_limit`` requests is decided one after another inside ONE
    transaction, so each decision sees the jobs stored before it: exactly as strict as one
    transaction each.
    ``batch_limit=1`` is that old path (the benchmark compares the two).
    """

    def __init__(
        self,
        storage: Storage,
        *,
        default_limit: LimitSpec,
        clip_cost_usd: float,
        clock: Clock,
        gates: AccountGates,
        daily_spend_ceiling_usd: float | None = None,
        batch_limit: int = BATCH_LIMIT,
    ) -> None:
        if batch_limit < 1:
            raise ValueError(f"batch_limit must be at least 1, not {batch_limit}")
        self._storage = storage
        self._default = default_limit
        self._cost = clip_cost_usd
        self._clock = clock
        self._gates = gates
        self._caps = SpendCaps(
            storage, clip_cost_usd=clip_cost_usd, daily_ceiling_usd=daily_spend_ceiling_usd
        )
        self._batch_limit = batch_limit
        self._line: deque[_Waiting] = deque()
        self._worker: asyncio.Task[None] | None = None
        # Jobs being ended because their caller left after its answer (see ``admit``).
        self._withdrawals: set[asyncio.Task[None]] = set()

    @property
    def clip_cost_usd(self) -> float:
        return self._cost

    async def admit(self, request: VideoRequest, origin: JobOrigin) -> Admitted:
        """Check repeats, limits, caps and credits, and store the job atomically, or refuse."""
        waiting = _Waiting(
            _new_job(request, origin),
            tuple(origin.role_ids),
            asyncio.get_running_loop().create_future(),
        )
        self._line.append(waiting)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work_through_line())
        try:
            # Shielded: a caller that gives up must not cancel what the batch is deciding.
            return await asyncio.shield(waiting.outcome)
        except asyncio.CancelledError:
            waiting.gone = True
            if not waiting.taken:
                self._line.remove(waiting)  # never decided: nothing is written
            elif (job := _admitted(waiting.outcome)) is not None:
                # Answered, then cancelled before it could read the answer: the batch had
                # already ended the jobs of callers gone by then, so this one is ended here.
                withdrawal = asyncio.create_task(self._withdraw(job))
                self._withdrawals.add(withdrawal)
                withdrawal.add_done_callback(self._withdrawals.discard)
            raise

    async def drain(self) -> None:
        """Let the batch under way and every withdrawal finish (before storage closes)."""
        pending = [*self._withdrawals]
        if self._worker is not None and not self._worker.done():
            pending.append(self._worker)
        if pending:
            await asyncio.wait(pending)

    async def _work_through_line(self) -> None:
        """Decide the waiting requests a batch at a time until none is left."""
        while self._line:
            batch = [self._line.popleft() for _ in range(min(self._batch_limit, len(self._line)))]
            for waiting in batch:
                waiting.taken = True
            try:
                retry = await self._decide_batch(batch)
            except Exception as error:
                # BEGIN or COMMIT failed: as when each had its own transaction, each hears it.
                log.warning("admission batch of %s failed", len(batch), exc_info=True)
                for waiting in batch:
                    _answer(waiting, error)
                continue
            except BaseException as error:
                for waiting in [*batch, *self._line]:
                    _answer(waiting, error)
                self._line.clear()
                raise
            for waiting in reversed(retry):
                waiting.taken = False
                self._line.appendleft(waiting)

    async def _decide_batch(self, batch: list[_Waiting]) -> list[_Waiting]:
        """Decide each request of ``batch`` in one transaction; answer each after the commit.

        Returns the requests to decide again: those of a transaction the engine gave up
        after an unexpected error (the request that met it is answered with it).
        """
        # Outside the transaction: another process's account pause, read at most every second.
        await self._gates.refresh()
        try:
            async with self._storage.db.transaction() as tx:
                outcomes = await self._decide_each(tx, batch)
        except _TransactionLost as lost:
            return [w for w in batch if w is not lost.failed and not w.gone]
        for waiting, outcome in outcomes:
            if isinstance(outcome, Admitted):
                _log_admitted(outcome)
            _answer(waiting, outcome)
        # Callers that left while the batch ran: their jobs are committed, then ended, never
        # deleted, so a request decided after one (a double click, a cap) saw a job that
        # existed. Taken with no await since the answers: a caller leaving from here on
        # holds its answer and ends its own job (``admit``).
        leaving = [o.job for w, o in outcomes if w.gone and isinstance(o, Admitted)]
        for job in leaving:
            await self._withdraw(job)
        return []

    async def _decide_each(
        self, tx: Transaction, batch: list[_Waiting]
    ) -> list[tuple[_Waiting, Admitted | BaseException]]:
        """Each request's outcome, in order, each decision seeing the jobs stored before it."""
        limits: dict[_MemberKey, _MemberLimit] = {}
        usages: dict[tuple[int, int], _Usage] = {}
        prices = _Prices()
        outcomes: list[tuple[_Waiting, Admitted | BaseException]] = []
        for waiting in batch:
            if waiting.gone:
                continue  # its caller left before its turn: nothing is written
            try:
                if _member_key(waiting) not in limits:
                    # Read at the server's first request: an error there is that request's.
                    here = [w for w in batch if w.new.guild_id == waiting.new.guild_id]
                    limits.update(await self._member_limits(tx, waiting.new.guild_id, here))
                member = limits[_member_key(waiting)]
                usage = usages.setdefault((waiting.new.guild_id, waiting.new.user_id), _Usage())
                outcome: Admitted | BaseException = await self._decide(
                    tx, waiting, member, usage, prices
                )
            except RefusedError as refusal:
                outcome = refusal
            except Exception as error:
                # Its own trouble, not the others': nothing it wrote is kept (on SQLite a
                # failed statement undoes itself; PostgreSQL gives up the transaction, and
                # the others are decided again in a new one; the ceiling's two notes share
                # a savepoint, so either engine undoes just those).
                # Its caller raises it, and the error handler logs it with a reference.
                log.debug("admission failed guild=%s", waiting.new.guild_id, exc_info=True)
                if not tx.active:
                    _answer(waiting, error)
                    raise _TransactionLost(waiting) from error
                outcome = error
            outcomes.append((waiting, outcome))
        return outcomes

    async def _withdraw(self, job: Job) -> None:
        """End a job stored for a caller cancelled during the commit: it never holds a place.

        As the starter ends a job Discord never saw; a failure here is left to the restart's
        recovery, which ends such jobs too.
        """
        log.warning("job=%s admitted for a request that was cancelled; ended unsent", job.id)
        now = self._clock.time()
        try:
            await self._storage.jobs.update(
                job.id, now=now, state=JobState.CANCELLED, error="not acknowledged", finished_at=now
            )
        except Exception:
            log.exception("job=%s could not be ended", job.id)

    async def _decide(
        self,
        tx: Transaction,
        waiting: _Waiting,
        member: _MemberLimit,
        usage: _Usage,
        prices: _Prices,
    ) -> Admitted:
        """One request's decision inside the batch's transaction; a refusal is raised.

        A refusal writes nothing but the note that moderators (or the operator) were told.
        ``usage`` is the member's counted uses, read once per batch and kept up to date;
        ``prices`` what Segmind lately charged per clip size, read once per batch.
        """
        new = waiting.new
        now = self._clock.time()
        if new.fingerprint is not None:
            # First: a double click must hear "already on its way", not "limit reached".
            earlier = await self._storage.jobs.same_request_since(
                new.guild_id, new.user_id, new.fingerprint, now - DUPLICATE_WINDOW_SECONDS, tx=tx
            )
            if earlier is not None:
                raise DuplicateRequest(earlier)
        settings, limit = member
        if limit.blocked:
            raise MemberBlocked(limit)
        start = window_start(now, limit.spec.period_seconds)
        if usage.times is None or start < usage.since:
            usage.times = await self._storage.jobs.counted_times(
                new.guild_id, new.user_id, start, tx=tx
            )
            usage.since = start
        window = window_usage(limit.spec, usage.times, now)  # it keeps those after start
        if window.remaining == 0:
            retry_at = window.next_free_at
            assert retry_at is not None
            raise LimitReached(limit, used=window.used, next_free_at=retry_at)
        if prices.by_kind is None:  # after the checks that need no price: those cost no read
            prices.by_kind = await recent_prices(self._storage.jobs, now, self._cost, tx=tx)
        # Reserved at an honest upper estimate until Segmind reports what it charged.
        price = reservation_usd(new.request, self._cost, prices.by_kind)
        refusal = await self._caps.refusal(tx, settings, now, clip_cost_usd=price)
        if refusal is not None:
            raise refusal
        # Last, so a recheck a paused account lets through is not spent on a request the
        # limits would refuse anyway.
        self._gates.check()
        job = await self._storage.jobs.insert(replace(new, created_at=now, cost_usd=price), tx=tx)
        usage.times.append(now)  # counted from now on, as a read would find it
        used = window.used + 1
        return Admitted(
            job=job,
            limit=limit,
            used=used,
            remaining=max(0, limit.spec.count - used),
            cost_usd=price,
        )

    async def _member_limits(
        self, tx: Transaction, guild_id: int, here: list[_Waiting]
    ) -> dict[_MemberKey, _MemberLimit]:
        """The server's settings and each member's effective limit, in three reads.

        Admission never changes settings or limits, so reading them once for the whole
        batch, inside its transaction, is what reading them for each request would give.
        """
        store = self._storage.limits
        settings = await store.guild_settings(guild_id, tx=tx)
        users = await store.user_limits_of(guild_id, [w.new.user_id for w in here], tx=tx)
        roles = {r.target_id: r.spec for r in await store.role_limits(guild_id, tx=tx)}
        found: dict[_MemberKey, _MemberLimit] = {}
        for waiting in here:
            user = users.get(waiting.new.user_id)
            # As load_effective_limit resolves it from the same rows.
            limit = resolve_limit(
                user=user.spec if user else None,
                roles={r: roles[r] for r in waiting.role_ids if r in roles},
                server=settings.default_limit,
                operator=self._default,
            )
            found[_member_key(waiting)] = (settings, limit)
        return found


def _new_job(request: VideoRequest, origin: JobOrigin) -> NewJob:
    """The row to store for a request; ``created_at`` and the price are set on admission."""
    return NewJob(
        guild_id=origin.guild_id,
        channel_id=origin.channel_id,
        user_id=origin.user_id,
        request=request,
        created_at=0.0,
        private=origin.private,
        parent_job_id=origin.parent_job_id,
        interaction_token=origin.interaction_token,
        interaction_created_at=origin.interaction_created_at,
        application_id=origin.application_id,
        upload_limit=origin.upload_limit,
        fingerprint=origin.fingerprint,
    )


def _member_key(waiting: _Waiting) -> _MemberKey:
    return (waiting.new.guild_id, waiting.new.user_id, waiting.role_ids)


def _admitted(outcome: asyncio.Future[Admitted]) -> Job | None:
    """The job in an answer already given, if it admitted one."""
    if not outcome.done() or outcome.cancelled() or outcome.exception() is not None:
        return None
    return outcome.result().job


def _answer(waiting: _Waiting, outcome: Admitted | BaseException) -> None:
    """Hand a request its result, once; a caller that left only has its future cancelled."""
    future = waiting.outcome
    if future.done():
        return
    if waiting.gone or isinstance(outcome, asyncio.CancelledError):
        future.cancel()
    elif isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _log_admitted(admitted: Admitted) -> None:
    job, limit = admitted.job, admitted.limit
    log.info(
        "job=%s admitted guild=%s user=%s limit=%s source=%s used=%s",
        job.id,
        job.guild_id,
        job.user_id,
        limit.spec,
        limit.source,
        admitted.used,
    )
