"""How `/videolimit`'s answers read, from the limit service's data."""

from __future__ import annotations

from cogs.limits import wording


def test_the_moderator_role_answer_says_discord_still_hides_the_command():
    text = wording.render_moderator_role(77)
    assert "<@&77> can now use `/videolimit`" in text and "Integrations" in text
    assert "only Manage Server and Administrator" in wording.render_moderator_role(None)


def test_the_alert_channel_answer_names_where_alerts_go():
    assert "now go to <#5>." in wording.render_alert_channel(5)
    assert "owner by DM" in wording.render_alert_channel(None)
