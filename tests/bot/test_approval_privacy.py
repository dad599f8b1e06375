"""Approval keeps private things private: a private prompt off the moderators' card, and a
denial's reason off a public message."""

from __future__ import annotations

import logging

import pytest

from tests.bot.helpers import TIMEOUT, embed_text, field, title
from tests.bot.test_approval import (  # noqa: F401 - fixtures
    approval_button,
    ask,
    bot_timings,
    card,
    fake_world,
    press,
    private_reply,
    require_approval,
    services,
)
from tests.bot.test_moderation import only_for, settled_answer
from tests.fakediscord import FakeDiscord, FakeMember, StoredMessage


def people(fake: FakeDiscord) -> tuple[FakeMember, FakeMember]:
    """The moderator and a member without the exempt role."""
    return fake.world.member_named("mod"), fake.world.member_named("alice")


async def test_a_private_prompt_stays_off_the_card_and_show_tells_only_a_moderator(
    bot, fake_discord: FakeDiscord, caplog: pytest.LogCaptureFixture
):
    mod, alice = people(fake_discord)
    await require_approval(fake_discord, mod)
    await ask(fake_discord, alice, "my very secret fox", private=True, negative_prompt="hidden owl")
    alert = await card(fake_discord)

    assert "secret fox" not in embed_text(alert) and "hidden owl" not in embed_text(alert)
    assert "private prompt" in embed_text(alert)

    refused = await private_reply(fake_discord, await press(fake_discord, alert, "show", alice))
    assert only_for(refused, alice) and "Only moderators" in refused.content
    assert "secret fox" not in refused.content

    with caplog.at_level(logging.INFO):
        shown = await private_reply(fake_discord, await press(fake_discord, alert, "show", mod))
    assert only_for(shown, mod)
    assert "my very secret fox" in shown.content and "hidden owl" in shown.content
    viewed = [r.getMessage() for r in caplog.records if "viewed the private prompt" in r.message]
    assert viewed and f"user={mod.id}" in viewed[0] and "secret fox" not in viewed[0]


async def test_a_public_request_card_has_no_show_button(bot, fake_discord: FakeDiscord):
    mod, alice = people(fake_discord)
    await require_approval(fake_discord, mod)
    await ask(fake_discord, alice, "an open fox")
    alert = await card(fake_discord)

    assert "an open fox" in embed_text(alert)
    assert approval_button(alert, "show") is None


async def test_an_answered_private_card_keeps_show(bot, fake_discord: FakeDiscord):
    mod, alice = people(fake_discord)
    await require_approval(fake_discord, mod)
    await ask(fake_discord, alice, "my very secret fox", private=True)
    alert = await card(fake_discord)

    opener = await press(fake_discord, alert, "deny", mod)
    submit = await fake_discord.dispatch_modal_submit(opener, {"reason": ""})
    await fake_discord.wait_for_ack(submit)
    await settled_answer(fake_discord, submit)
    await fake_discord.wait_until(lambda: approval_button(alert, "approve") is None)

    assert "secret fox" not in embed_text(alert)
    shown = await private_reply(fake_discord, await press(fake_discord, alert, "show", mod))
    assert "my very secret fox" in shown.content


async def deny(fake: FakeDiscord, alert: StoredMessage, mod: FakeMember, reason: str) -> str:
    """Deny through the form; the moderator's private answer."""
    opener = await press(fake, alert, "deny", mod)
    submit = await fake.dispatch_modal_submit(opener, {"reason": reason})
    await fake.wait_for_ack(submit)
    told = await settled_answer(fake, submit)
    assert only_for(told, mod)
    return told.content


async def test_a_public_denial_shows_no_reason_or_prompt_and_the_member_gets_it_by_dm(
    bot, fake_discord: FakeDiscord
):
    mod, alice = people(fake_discord)
    await require_approval(fake_discord, mod)
    waiting = await ask(fake_discord, alice, "a public fox")
    alert = await card(fake_discord)

    answer = await deny(fake_discord, alert, mod, "you were warned about this")

    await fake_discord.wait_until(lambda: title(waiting) == "Request denied")
    assert "warned" not in embed_text(waiting) and "public fox" not in embed_text(waiting)
    assert "A moderator denied this request." in (field(waiting, "Why") or "")
    dm = await fake_discord.wait_until(
        lambda: next((m for m in fake_discord.dm_messages(alice) if m.embeds), None), TIMEOUT
    )
    assert "you were warned about this" in (field(dm, "Why") or "")
    assert "with your reason, privately" in answer


async def test_a_reason_that_cannot_reach_closed_dms_is_said_to_the_moderator(
    bot, fake_discord: FakeDiscord
):
    mod, alice = people(fake_discord)
    alice.user.accepts_dms = False
    await require_approval(fake_discord, mod)
    waiting = await ask(fake_discord, alice, "a public fox")
    alert = await card(fake_discord)

    answer = await deny(fake_discord, alert, mod, "you were warned about this")

    assert "did not reach them" in answer
    assert title(waiting) == "Request denied" and "warned" not in embed_text(waiting)


async def test_a_private_denial_shows_the_reason_on_the_members_own_message(
    bot, fake_discord: FakeDiscord
):
    mod, alice = people(fake_discord)
    await require_approval(fake_discord, mod)
    waiting = await ask(fake_discord, alice, "my very secret fox", private=True)
    alert = await card(fake_discord)

    await deny(fake_discord, alert, mod, "too secret")

    await fake_discord.wait_until(lambda: title(waiting) == "Request denied")
    assert "too secret" in (field(waiting, "Why") or "")
    assert not [m for m in fake_discord.dm_messages(alice) if m.embeds]


@pytest.mark.parametrize("dms_open", [True, False])
async def test_a_denial_without_a_reason_is_said_on_the_public_message_alone(
    bot, fake_discord: FakeDiscord, dms_open: bool
):
    mod, alice = people(fake_discord)
    alice.user.accepts_dms = dms_open
    await require_approval(fake_discord, mod)
    waiting = await ask(fake_discord, alice, "a public fox")
    alert = await card(fake_discord)

    answer = await deny(fake_discord, alert, mod, "   ")

    await fake_discord.wait_until(lambda: title(waiting) == "Request denied")
    # Nothing private to keep off it: the member's message is the whole answer.
    assert "A moderator denied this request." in (field(waiting, "Why") or "")
    assert "public fox" in embed_text(waiting)
    assert not fake_discord.dm_messages(alice)
    assert "the member was told." in answer and "reason" not in answer
    await fake_discord.wait_until(lambda: "Denied by" in embed_text(alert))
    assert not fake_discord.dm_messages(alice)  # not by the notice sweep either
