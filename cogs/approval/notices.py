"""Telling how a held request ended: the member's message, and the moderators' card.

Discord may fail a notice for a moment (a 5xx, a 429 past discord.py's retries, no
connection). The request is no longer pending then, so nothing else would ever tell it:
whether each notice got through is stored on the request, and the approval sweep tries
again (``retry_unsettled``) for up to a day, backing off per request, each retry claimed
in the database first so two processes never tell one twice. A refusal for good
(403, 404) is not retried: a public request's member is told by direct message instead,
as a job's failure is.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING, Any, Literal

import discord

from cogs.alerts import owner_dm_text
from cogs.approval import wording
from cogs.approval.recovery import RESTART_WHY
from cogs.discord_errors import (
    DISCORD_UNREACHABLE,
    UNKNOWN_MESSAGE,
    is_transient,
    token_expired,
)
from cogs.video import render
from cogs.video.routes import MemberRoutes
from services.approval_models import ApprovalState, HeldRequest
from services.approvals import RESTART_REASON
from services.backoff import Backoff
from services.models import Job, JobState

if TYPE_CHECKING:
    from cogs.videobot import VideoBot

log = logging.getLogger(__name__)

NO_PINGS = discord.AllowedMentions.none()
LEFT_SERVER = "The member left the server before it was approved."
NO_MODERATORS_REASON = "no moderator reachable"
FAILED_REASON = "The bot could not start it (an error on its side)."
FAILED_WHY = (
    "A moderator approved this request, but the bot could not start it because of an "
    "error on its side. Nothing was spent. Please ask again."
)
REFUSED_TITLE = "Approved, but it cannot be made now"
REFUSED_WHY = "It was approved, but it cannot be made now. Nothing was spent."
FAILED_TITLE = "Approved, but it could not be started"
# An answer's own flow tells it; the sweep only takes over what is still untold after this.
RETRY_GRACE_SECONDS = 60.0
RETRY_BACKOFF = Backoff(base=30.0, cap=3600.0)

# told: it reached them; closed: Discord refused it for good; retry: try again later.
Outcome = Literal["told", "closed", "retry"]


def _as_job(held: HeldRequest) -> Job:
    """The held request as the member routes read a job: where, and through which token.

    Never stored: it only lets the routes the job messages use reach this message too.
    """
    return Job(
        id=held.job_id or 0,
        guild_id=held.guild_id,
        channel_id=held.channel_id,
        user_id=held.user_id,
        request=held.request,
        state=JobState.CANCELLED,
        created_at=held.created_at,
        private=held.private,
        message_id=held.message_id,
        interaction_token=held.interaction_token,
        interaction_created_at=held.interaction_created_at,
        application_id=held.application_id,
        upload_limit=held.upload_limit,
    )


def _transient(error: BaseException) -> bool:
    """Discord's own trouble, or no connection: the same call may well work later."""
    if isinstance(error, discord.HTTPException):
        return is_transient(error)
    return True  # aiohttp.ClientError, OSError


def notice_for(held: HeldRequest) -> tuple[str, str, str | None] | None:
    """What the member is told of how it ended (title, public why, private why), from the
    stored request alone, so the sweep can tell it again; None: nothing to tell them."""
    state = held.state
    if state is ApprovalState.EXPIRED:
        return "Request expired", wording.EXPIRED_WHY, None
    if state is ApprovalState.DENIED:
        return "Request denied", wording.DENIED_PUBLIC, wording.denial_reason(held)
    if state is ApprovalState.REFUSED:
        return REFUSED_TITLE, REFUSED_WHY, held.reason or REFUSED_WHY
    if state is ApprovalState.FAILED:
        return FAILED_TITLE, RESTART_WHY if held.reason == RESTART_REASON else FAILED_WHY, None
    if state is ApprovalState.CANCELLED:
        if held.reason == LEFT_SERVER:
            return None  # they left: there is nobody to tell
        if held.reason == NO_MODERATORS_REASON:
            return "Nobody could approve this request", wording.NO_MODERATORS_WHY, None
        return "Request withdrawn", wording.cancelled_why(held), None
    return None  # approved: the job took over the member's message


class ApprovalNotices:
    def __init__(self, bot: VideoBot) -> None:
        self._bot = bot
        self._routes = MemberRoutes(bot)
        self._rng = random.Random()
        self._busy: set[int] = set()  # requests whose notices are being sent right now
        self._failures: dict[int, tuple[int, float]] = {}  # id: (failed attempts, next try)

    # --- the member --------------------------------------------------------------------

    async def tell_member(
        self, held: HeldRequest, title: str, why: str, private_why: str | None = None
    ) -> bool:
        """Replace the member's waiting message with how it ended.

        ``why`` is what anyone may read; ``private_why``, when given, is for the member
        alone (a denial's reason, the limit that refused it). A public message then shows
        only ``why``, without the prompt, and the member gets ``private_why`` by direct
        message. False only when Discord refused for good what was meant for the member;
        a passing failure is stored as untold, and the sweep tries again.

        The job messages' routes: the interaction's webhook while its token is fresh; then
        the channel for a public request, or (a private message can only be edited through
        its token) a direct message, as a private job's failure is told.
        """
        self._busy.add(held.id)
        try:
            outcome = await self._tell(held, title, why, private_why)
            await self._note(held, "member", outcome)
        finally:
            self._busy.discard(held.id)
        return outcome != "closed"

    async def _tell(
        self, held: HeldRequest, title: str, why: str, private_why: str | None
    ) -> Outcome:
        if held.message_id is None:
            return "told"  # never acknowledged: the member saw nothing to replace
        job = _as_job(held)
        if held.private:
            return await self._edit_private(job, held, title, private_why or why)
        public = render.approval_ended_embed(
            held.request,
            held.user_id,
            request_no=held.id,
            title=title,
            why=why,
            show_prompt=private_why is None,
        )
        try:
            await self._edit_public(job, held.message_id, public)
        except DISCORD_UNREACHABLE as error:
            if _transient(error):
                log.warning("approval=%s member's message not updated (%r)", held.id, error)
                return "retry"
            # Refused for good (the bot lost the channel): the whole answer by DM instead.
            log.info("approval=%s member's message refused (%r); telling by DM", held.id, error)
            return await self._send_privately(job, held, title, private_why or why)
        if private_why is None or private_why == why:
            return "told"
        return await self._send_privately(job, held, title, private_why)

    async def _edit_private(self, job: Job, held: HeldRequest, title: str, why: str) -> Outcome:
        assert held.message_id is not None
        embed = render.approval_ended_embed(
            held.request, held.user_id, request_no=held.id, title=title, why=why
        )
        try:
            if self._routes.token_usable(job) and await self._edit_by_token(
                job, held.message_id, embed
            ):
                return "told"
        except DISCORD_UNREACHABLE as error:
            log.warning("approval=%s member could not be told (%r)", held.id, error)
            return "retry" if _transient(error) else "closed"
        return await self._send_privately(job, held, title, why)

    async def _edit_public(self, job: Job, message_id: int, embed: discord.Embed) -> None:
        if self._routes.token_usable(job) and await self._edit_by_token(job, message_id, embed):
            return
        await self._edit_in_channel(job, message_id, embed)

    async def _edit_by_token(self, job: Job, message_id: int, embed: discord.Embed) -> bool:
        """False when the token died or the message is gone: another route must tell it."""
        try:
            await self._routes.webhook(job).edit_message(message_id, embed=embed, view=None)
        except discord.HTTPException as error:
            if not token_expired(error) and error.code != UNKNOWN_MESSAGE:
                raise
            return False
        return True

    async def _send_privately(self, job: Job, held: HeldRequest, title: str, why: str) -> Outcome:
        """A direct message with the whole answer; "closed" when the member's DMs are."""
        embed = render.approval_ended_embed(
            held.request, held.user_id, request_no=held.id, title=title, why=why
        )
        try:
            user = self._bot.get_user(held.user_id) or await self._bot.fetch_user(held.user_id)
            await user.send(
                content=self._routes.origin(job), embed=embed, allowed_mentions=NO_PINGS
            )
        except DISCORD_UNREACHABLE as error:
            log.warning("approval=%s member could not be told privately (%r)", held.id, error)
            return "retry" if _transient(error) else "closed"
        return "told"

    async def _edit_in_channel(self, job: Job, message_id: int, embed: discord.Embed) -> None:
        channel = self._routes.channel(job)
        try:
            await channel.get_partial_message(message_id).edit(
                **self._routes.channel_body(job, None, embed), view=None
            )
        except discord.NotFound:
            # Deleted meanwhile: a new line says it, naming the member without a ping.
            await channel.send(
                **self._routes.channel_body(job, f"<@{job.user_id}>", embed),
                allowed_mentions=NO_PINGS,
            )

    # --- the moderators' card ------------------------------------------------------------

    async def edit_alert(self, held: HeldRequest) -> None:
        """The moderators' card says who answered, and loses its buttons.

        A passing failure leaves it stored as not updated, for the sweep to try again.
        """
        self._busy.add(held.id)
        try:
            await self._note(held, "card", await self._edit_alert(held))
        finally:
            self._busy.discard(held.id)

    async def _edit_alert(self, held: HeldRequest) -> Outcome:
        if held.alert_channel_id is None or held.alert_message_id is None:
            return "told"  # no card was posted: nothing to update
        text, outcome = wording.alert_text(held), wording.outcome_line(held)
        options: dict[str, Any] = {
            "embed": wording.alert_embed(held, outcome=outcome),
            "view": wording.ended_view(held, self._bot.custom_ids),
            "allowed_mentions": NO_PINGS,
        }
        guild = self._bot.get_guild(held.guild_id)
        posted_in = guild.get_channel_or_thread(held.alert_channel_id) if guild else None
        if guild is None:
            pass  # the server is out of reach: the card is edited as it is
        elif posted_in is None:
            # Not one of the server's channels: the owner's DM, whose card names the server.
            text = owner_dm_text(guild, text)
        elif not posted_in.permissions_for(guild.me).embed_links:
            # Embed Links taken away since it was posted: an edited embed would be dropped,
            # so the answer goes in the text and the old embed is left as it was.
            del options["embed"]
            text = f"{text}\n{outcome}"
        options["content"] = text[:2000]
        channel = self._bot.get_partial_messageable(held.alert_channel_id)
        try:
            await channel.get_partial_message(held.alert_message_id).edit(**options)
        except DISCORD_UNREACHABLE as error:
            log.warning("approval=%s moderators' card not updated (%r)", held.id, error)
            return "retry" if _transient(error) else "closed"
        return "told"

    # --- trying again ------------------------------------------------------------------

    async def _note(self, held: HeldRequest, which: str, outcome: Outcome) -> None:
        """Store a notice as settled, or count the failure for the sweep's backoff."""
        if outcome == "retry":
            wait = self._note_failure(held)
            log.info("approval=%s %s notice failed; trying again in %.0fs", held.id, which, wait)
            return
        try:
            await self._bot.services.approvals.noted(
                held, member_told=which == "member", card_updated=which == "card"
            )
        except Exception:
            # Left untold: the sweep tells it again, once more than needed at worst.
            log.exception("approval=%s %s notice could not be recorded", held.id, which)

    def _note_failure(self, held: HeldRequest) -> float:
        """Back off from this request's notices: seconds until the sweep tries it again."""
        attempts = self._failures.get(held.id, (0, 0.0))[0] + 1
        wait = RETRY_BACKOFF.delay(attempts, self._rng)
        self._failures[held.id] = (attempts, self._bot.services.clock.time() + wait)
        return wait

    async def retry_unsettled(self) -> int:
        """Try again the notices Discord did not take (for up to a day); how many tried."""
        approvals, now = self._bot.services.approvals, self._bot.services.clock.time()
        for stale in [key for key, (_, due) in self._failures.items() if due < now - 86400]:
            del self._failures[stale]  # past the day the store still lists it for
        # Those being told now or backing off are left out by the read, before its limit:
        # filtered after it, a hundred old ones waiting their turn hid every newer notice.
        waiting = {key for key, (_, due) in self._failures.items() if due > now}
        tried = 0
        for held in await approvals.unsettled(grace=RETRY_GRACE_SECONDS, skip=waiting | self._busy):
            if held.id in self._busy:  # began being told since the read
                continue
            try:
                await self._retry(held)
            except Exception:
                # One request's trouble (a bug, the database) must not stop the others'.
                log.exception("approval=%s notices could not be retried", held.id)
                self._note_failure(held)
            tried += 1
        return tried

    async def _retry(self, held: HeldRequest) -> None:
        approvals = self._bot.services.approvals
        # Every process sweeps every server's requests: only the one that claims it tells.
        if not await approvals.claim_notices(held):
            return
        current = await approvals.get(held.id, None)  # as it is now, not as listed
        if not current.member_told:
            notice = notice_for(current)
            if notice is None:
                await self._note(current, "member", "told")
            else:
                await self.tell_member(current, *notice)
        if not current.card_updated:
            await self.edit_alert(current)
