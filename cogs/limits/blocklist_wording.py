"""How `/videolimit blocklist` reads to moderators: changes, the list, refusals, history.

Pure functions from the blocklist service's dataclasses to text and embeds. Moderators
see the terms; members never do (their refusal is services.blocklist.PromptBlocked).
"""

from __future__ import annotations

import discord

from cogs.pages import paginate
from cogs.words import discord_timestamp, plural
from services.blocklist import ADD_ACTION, REMOVE_ACTION, BlocklistOverview, TermAdded
from services.blocklist_terms import show_term
from services.models import AuditEntry, BlockedPrompt, BlocklistEntry

TERM_HELP = (
    "A word or phrase (whole words, any case, look-alike letters count), "
    "or /regex/ matched against the normalised prompt"
)
HOW_IT_MATCHES = (
    "Words and phrases match whole words in any case, also when spelled with look-alike "
    "letters (Cyrillic, Greek, fullwidth), hidden characters or spaced-out letters; "
    "`class` does not match `ass`. A `/regex/` runs on the prompt as normalised that way: "
    "lower case, look-alikes as Latin letters, hidden characters and accents removed."
)


def render_added(added: TermAdded) -> str:
    """`/videolimit blocklist add`: what now gets refused, and how full the list is."""
    term = added.term
    if term.kind == "pattern":
        what = "matching the pattern"
    elif len(term.words) > 1:
        what = "with the phrase"
    else:
        what = "with the word"
    text = (
        f"Requests {what} {show_term(term.text)} in their prompt or negative prompt are now "
        "refused, privately and without naming it. "
        f"The blocklist has {added.count} of {added.max_terms} terms."
    )
    if added.blocks_default_negative:
        text += (
            "\n**Warning:** the server's default negative prompt has this term too, so every "
            "`/video` without its own negative prompt is now refused. Remove the term, or "
            "have the bot's operator change DEFAULT_NEGATIVE_PROMPT."
        )
    return text


def render_removed(term: str) -> str:
    return f"Removed {show_term(term)} from the blocklist: prompts with it are allowed again."


def _term_line(entry: BlocklistEntry) -> str:
    when = discord_timestamp(entry.added_at)
    return f"{show_term(entry.term)} · added by <@{entry.added_by}> {when}"


def _refusal_line(refusal: BlockedPrompt) -> str:
    why = " (the pattern ran out of time)" if refusal.timed_out else ""
    return (
        f"{discord_timestamp(refusal.at)} <@{refusal.user_id}> in <#{refusal.channel_id}>: "
        f"{show_term(refusal.term)}{why}"
    )


def render_blocklist(overview: BlocklistOverview) -> list[discord.Embed]:
    """`/videolimit blocklist show`: every term, then the latest refusals; paged when long."""
    header = [
        f"{plural(len(overview.terms), 'term')} of at most {overview.max_terms}. " + HOW_IT_MATCHES,
        "",
    ]
    lines = [_term_line(entry) for entry in overview.terms] or [
        "No terms yet: add one with `/videolimit blocklist add`."
    ]
    lines += ["", "**Latest refusals**"]
    lines += [_refusal_line(r) for r in overview.refusals] or ["No prompt refused yet."]
    return paginate("Blocklist", header, lines)


def blocklist_history_words(entry: AuditEntry) -> str | None:
    """`added `word` to the blocklist` for `/videolimit history`; None for other entries."""
    if entry.action == ADD_ACTION:
        return f"added {show_term(entry.detail)} to the blocklist"
    if entry.action == REMOVE_ACTION:
        return f"removed {show_term(entry.detail)} from the blocklist"
    return None
