"""How `/videolimit`'s answers read, from the limit service's data."""

from __future__ import annotations

from collections.abc import Sequence

from cogs.limits import wording
from services.approval_models import ApprovalRule
from services.limits import BudgetStatus, EffectiveLimit, LimitsOverview
from services.models import GuildSettings, LimitOverride
from services.periods import LimitSpec


def test_the_moderator_role_answer_says_discord_still_hides_the_command():
    text = wording.render_moderator_role(77)
    assert "<@&77> can now use `/videolimit`" in text and "Integrations" in text
    assert "only Manage Server and Administrator" in wording.render_moderator_role(None)


def test_the_alert_channel_answer_names_where_alerts_go():
    assert "now go to <#5>." in wording.render_alert_channel(5)
    assert "owner by DM" in wording.render_alert_channel(None)


# --- the overview's blocklist, channels and approval lines -------------------------------

GUILD = 1


def _overview(members: int = 0) -> LimitsOverview:
    budget = BudgetStatus(
        clip_cost_usd=0.3,
        clips_today=0,
        daily_clip_cap=None,
        day_resets_at=86400,
        clips_this_month=0,
        spent_this_month_usd=0.0,
        monthly_budget_usd=None,
        month_resets_at=86400 * 30,
    )
    overrides = tuple(
        LimitOverride(GUILD, 1000 + n, LimitSpec(2, 86400), set_by=9, set_at=0)
        for n in range(members)
    )
    return LimitsOverview(
        guild_id=GUILD,
        server_default=EffectiveLimit(LimitSpec(5, 86400), "operator"),
        settings=GuildSettings(GUILD),
        user_limits=overrides,
        role_limits=(),
        budget=budget,
    )


def _rule(role_id: int | None, expiry_seconds: int = 3600) -> ApprovalRule:
    return ApprovalRule(GUILD, role_id, expiry_seconds, set_by=9, set_at=0)


def _shown(
    *,
    terms: int = 0,
    channels: Sequence[int] = (),
    approval: ApprovalRule | None = None,
    members: int = 0,
) -> list[str]:
    embeds = wording.render_overview(
        _overview(members), None, blocklist_terms=terms, channel_ids=channels, approval=approval
    )
    return [str(embed.description) for embed in embeds]


def test_the_overview_says_nothing_is_restricted_when_nothing_is_set():
    (page,) = _shown()
    assert "**Blocklist:** none" in page
    assert "**Where /video works:** everywhere" in page
    assert "**Approval:** off" in page


def test_the_overview_counts_the_blocklist_terms_and_never_lists_them():
    (page,) = _shown(terms=3)
    assert "**Blocklist:** 3 terms (see `/videolimit blocklist show`)" in page
    assert "**Blocklist:** 1 term (see" in _shown(terms=1)[0]


def test_the_overview_names_a_few_allowed_channels_and_counts_the_rest():
    assert "**Where /video works:** <#11>, and their threads" in _shown(channels=[11])[0]
    two = _shown(channels=[11, 12])[0]
    assert "**Where /video works:** <#11> and <#12>, and their threads" in two
    three = _shown(channels=[11, 12, 13])[0]
    assert "**Where /video works:** <#11>, <#12> and <#13>, and their threads" in three
    many = _shown(channels=list(range(11, 61)))[0]
    assert (
        "**Where /video works:** <#11>, <#12>, <#13> and 47 more "
        "(see `/videolimit channels show`)" in many
    )
    assert "<#14>" not in many


def test_the_overview_says_who_waits_for_approval_and_for_how_long():
    role = _shown(approval=_rule(77))[0]
    assert "**Approval:** required for members without <@&77>, requests wait up to 1h" in role
    everyone = _shown(approval=_rule(None, expiry_seconds=2 * 86400))[0]
    assert "**Approval:** required for every member, requests wait up to 2d" in everyone


def test_the_new_lines_are_on_every_page_and_each_page_fits_an_embed():
    # Fifty member overrides page the overview; the header (with the new lines) repeats.
    pages = _shown(terms=250, channels=list(range(10**17, 10**17 + 50)), approval=_rule(77),
                   members=50)  # fmt: skip
    assert len(pages) > 1
    for page in pages:
        assert "**Blocklist:** 250 terms" in page
        assert "and 47 more" in page
        assert "**Approval:** required" in page
        assert len(page) <= 4096


def test_the_budget_calls_the_flat_price_an_estimate() -> None:
    # Spend counts Segmind's own figures and reservations may be higher than CLIP_COST_USD:
    # the flat price must not read as what every clip costs.
    embed = wording.render_budget(
        BudgetStatus(
            clip_cost_usd=0.36,
            clips_today=0,
            daily_clip_cap=None,
            day_resets_at=0.0,
            clips_this_month=0,
            spent_this_month_usd=0.0,
            monthly_budget_usd=None,
            month_resets_at=0.0,
        )
    )
    assert "**Price per clip:** about $0.36 (the estimate" in (embed.description or "")
