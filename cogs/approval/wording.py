"""What approval looks like: the moderators' request card, its outcome, and the replies.

The member's own "waiting" and "ended" looks are job messages, so they live with the
others in ``cogs.video.render``.
"""

from __future__ import annotations

import discord

from cogs.approval import ids
from cogs.video import render
from cogs.video.custom_ids import CustomIds
from cogs.words import discord_timestamp
from services.approval_models import ApprovalChange, ApprovalRule, ApprovalState, HeldRequest
from services.approvals import AUDIT_ACTION, AuditedRule, read_audit_detail
from services.models import AuditEntry
from services.periods import format_period

PROMPT_SHOWN_TO_MODERATORS = 1500


def alert_text(held: HeldRequest) -> str:
    """The line above the card; the mentions are shown, never pinged (no mentions allowed)."""
    kind = "a private video" if held.private else "a video"
    return f"Approval needed: <@{held.user_id}> asked for {kind} in <#{held.channel_id}>."


# Said privately before a public waiting message when the request had to be deferred.
WAITING_BELOW = "Your request is waiting for a moderator's approval; see below."
PRIVATE_PROMPT = "*private prompt: press Show to see it*"
NOT_MODERATOR_SHOW = "Only moderators can see a private request's prompt."


def alert_embed(held: HeldRequest, *, outcome: str | None = None) -> discord.Embed:
    """The moderators' card: the prompt literally, the parameters, and when it expires.

    A private request's prompts stay off the card: the alerts channel may be one every
    member reads. Show tells them to a moderator, privately.
    """
    prompt = (
        PRIVATE_PROMPT
        if held.private
        else render.shown_text(held.request.prompt, PROMPT_SHOWN_TO_MODERATORS)
    )
    embed = discord.Embed(
        title=f"Request #{held.id} waits for approval"
        if outcome is None
        else f"Request #{held.id}",
        description=prompt,
        colour=render.COLOUR_WORKING if outcome is None else render.COLOUR_QUIET,
    )
    embed.add_field(name="Requested by", value=f"<@{held.user_id}>")
    embed.add_field(name="Channel", value=f"<#{held.channel_id}>")
    embed.add_field(name="Visibility", value="private" if held.private else "public")
    render.parameter_fields(embed, held.request)
    if held.private:
        for index, shown in enumerate(embed.fields):
            if shown.name == "Negative prompt":
                embed.set_field_at(index, name=shown.name, value=PRIVATE_PROMPT, inline=False)
    if outcome is None:
        embed.add_field(
            name="Expires",
            value=f"{discord_timestamp(held.expires_at)} if nobody answers",
            inline=False,
        )
    else:
        embed.add_field(name="Answer", value=outcome[: render.FIELD_VALUE_MAX], inline=False)
    return embed


def alert_view(held: HeldRequest, custom_ids: CustomIds) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(
        discord.ui.Button(
            label="Approve",
            style=discord.ButtonStyle.success,
            custom_id=ids.make(custom_ids, ids.APPROVE, held.id),
        )
    )
    view.add_item(
        discord.ui.Button(
            label="Deny",
            style=discord.ButtonStyle.danger,
            custom_id=ids.make(custom_ids, ids.DENY, held.id),
        )
    )
    if held.private:
        view.add_item(_show_button(held, custom_ids))
    view.stop()  # never listened to in memory: on_interaction routes every click
    return view


def ended_view(held: HeldRequest, custom_ids: CustomIds) -> discord.ui.View | None:
    """An answered card keeps only Show, for a private request: what was asked stays findable."""
    if not held.private:
        return None
    view = discord.ui.View(timeout=None)
    view.add_item(_show_button(held, custom_ids))
    view.stop()
    return view


def _show_button(held: HeldRequest, custom_ids: CustomIds) -> discord.ui.Button[discord.ui.View]:
    return discord.ui.Button(
        label="Show prompt",
        style=discord.ButtonStyle.secondary,
        custom_id=ids.make(custom_ids, ids.SHOW, held.id),
    )


def revealed_prompt(held: HeldRequest) -> str:
    """A private request's prompts, for the moderator who pressed Show (like /videoqueue's)."""
    negative = render.shown_text(held.request.negative_prompt, 300) or "(none)"
    return "\n".join(
        [
            f"**Request #{held.id}** by <@{held.user_id}> (private)",
            f"**Prompt:** {render.shown_text(held.request.prompt, PROMPT_SHOWN_TO_MODERATORS)}",
            f"**Negative prompt:** {negative}",
        ]
    )


def waiting_view(held: HeldRequest, custom_ids: CustomIds) -> discord.ui.View:
    """The member's Cancel while it waits (the requester or a moderator may press it)."""
    view = discord.ui.View(timeout=None)
    view.add_item(
        discord.ui.Button(
            label="Cancel",
            style=discord.ButtonStyle.secondary,
            custom_id=ids.make(custom_ids, ids.CANCEL, held.id),
        )
    )
    view.stop()
    return view


def deny_form(request_id: int, custom_ids: CustomIds) -> discord.ui.Modal:
    """Built from the button's signed id alone: it must be the click's first answer."""
    form = discord.ui.Modal(
        title=f"Deny request #{request_id}",
        custom_id=ids.make(custom_ids, ids.DENY_FORM, request_id),
    )
    form.add_item(
        discord.ui.TextInput(
            label="Reason (sent privately to the member)",  # Discord: 45 characters at most
            placeholder="Optional",
            custom_id=ids.REASON_FIELD,
            style=discord.TextStyle.paragraph,
            required=False,
            max_length=300,
        )
    )
    form.stop()  # submissions go through on_interaction, before and after a restart
    return form


def decided_words(held: HeldRequest) -> str:
    """`approved by <@5> <t:..:R>`: who ended the wait, for the card and for a late click."""
    when = f" {discord_timestamp(held.decided_at)}" if held.decided_at else ""
    by = f" by <@{held.decided_by}>" if held.decided_by else ""
    verb = {
        ApprovalState.APPROVED: "approved",
        ApprovalState.REFUSED: "approved, then refused by the limits,",
        ApprovalState.DENIED: "denied",
        ApprovalState.EXPIRED: "expired unanswered",
        ApprovalState.CANCELLED: "withdrawn",
        ApprovalState.FAILED: "approved, but the bot could not start it (nothing spent),",
        ApprovalState.PENDING: "still waiting",
    }[held.state]
    return f"{verb}{by}{when}"


def already_decided(held: HeldRequest) -> str:
    return f"Request #{held.id} was already answered: {decided_words(held)}."


def outcome_line(held: HeldRequest) -> str:
    """The card's answer once the wait ended."""
    words = decided_words(held)
    # Not str.capitalize(): it lowercases the rest, and `<t:…:R>` would become `:r>`.
    line = words[:1].upper() + words[1:] + "."
    if held.state is ApprovalState.APPROVED and held.job_id is not None:
        line += f" Job #{held.job_id}."
    if held.reason and held.state in (
        ApprovalState.DENIED,
        ApprovalState.REFUSED,
        ApprovalState.FAILED,
    ):
        line += f"\nReason: {render.shown_text(held.reason, 400)}"
    return line


DENIED_PUBLIC = "A moderator denied this request."


def denied_reply(held: HeldRequest, *, reason_reached: bool) -> str:
    """The moderator's answer to their Deny: whether the member got what was meant for them."""
    if reason_reached:
        told = (
            "the member was told, with your reason, privately"
            if held.reason
            else "the member was told"
        )
        return f"Denied request #{held.id}; {told}."
    if held.reason and not held.private:
        return (
            f"Denied request #{held.id}. Their message now says it was denied, but your "
            "reason did not reach them: the bot cannot send them a direct message (their "
            "DMs may be closed)."
        )
    return f"Denied request #{held.id}, but the member could not be told."


def denial_reason(held: HeldRequest) -> str | None:
    """What the member alone reads: a moderator denied it, with their reason shown literally.

    None without a reason: then nothing is private, and the member's message (``DENIED_PUBLIC``,
    with the prompt, as any other ending shows it) is the whole answer; no direct message.
    """
    if not held.reason:
        return None
    return f"{DENIED_PUBLIC}\nReason: {render.shown_text(held.reason, 400)}"


EXPIRED_WHY = "No moderator answered in time, so the request expired."
CANCELLED_BY_MEMBER = "You withdrew this request."
NO_MODERATORS_WHY = (
    "No moderator could be asked: the bot could not post in the moderators' channel "
    "or reach the server owner. Ask a moderator to check `/videolimit alerts`."
)


def cancelled_why(held: HeldRequest) -> str:
    if held.decided_by is None or held.decided_by == held.user_id:
        return CANCELLED_BY_MEMBER
    return f"Withdrawn by a moderator (<@{held.decided_by}>)."


def rule_words(rule: ApprovalRule | None) -> str:
    if rule is None:
        return "Approval is **off**: requests are made at once, within the limits."
    who = (
        "Every request waits"
        if rule.role_id is None
        else f"Requests from members without <@&{rule.role_id}> wait"
    )
    return (
        f"Approval is **required**. {who} for a moderator's Approve or Deny in the "
        f"moderators' alerts channel (`/videolimit alerts`); unanswered, a request expires "
        f"after {format_period(rule.expiry_seconds)}. Moderators' own requests never wait."
    )


def approval_history_words(entry: AuditEntry) -> str | None:
    """`required approval for members without <@&5>, waiting up to 1h (it was off)`.

    For `/videolimit history`; None for other entries, or one stored before the rule's
    change was kept as data (it is then shown as stored).
    """
    if entry.action != AUDIT_ACTION:
        return None
    change = read_audit_detail(entry.detail)
    if change is None:
        return None
    before, after = change
    was = f" (it was {_audited_words(before)})"
    if after is None:
        return f"turned approval off{was}"
    return f"{_audited_words(after)}{was}"


def _audited_words(rule: AuditedRule | None) -> str:
    if rule is None:
        return "off"
    who = "every member" if rule.role_id is None else f"members without <@&{rule.role_id}>"
    return f"required approval for {who}, waiting up to {format_period(rule.expiry_seconds)}"


def change_words(change: ApprovalChange) -> str:
    now = rule_words(change.after)
    if not change.changed:
        return now if change.before == change.after else f"Nothing changed. {now}"
    return f"{now}\n(Before: {rule_words(change.before)})"
