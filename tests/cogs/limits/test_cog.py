"""`/videolimit`: who may use it, what it changes, and replies that fit Discord's limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import discord
import pytest
from discord import app_commands

from cogs.alerts import notify_moderators
from cogs.limits import LimitsCog
from cogs.pages import Pages
from cogs.permissions import NotModerator
from cogs.tree import describe_error
from services.allowed_channels import AllowedChannels
from services.approvals import Approvals
from services.blocklist import Blocklist
from services.errors import ValidationError
from services.gallery import GalleryService
from services.limits import LimitService
from services.models import JobState, VideoRequest
from services.periods import LimitSpec
from services.storage import NewJob, Storage
from tests.fakeclock import FakeClock

GUILD = 500
MOD_ID, MEMBER_ID, TARGET_ID = 1, 2, 3
MOD_ROLE, OTHER_ROLE = 70, 71
D = 86400


# --- small fakes for what the cog touches -----------------------------------------------


class FakeResponse:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.edits: list[dict[str, Any]] = []
        self.deferred: dict[str, Any] | None = None

    def is_done(self) -> bool:
        return bool(self.sent or self.edits or self.deferred is not None)

    async def defer(self, **kwargs: Any) -> None:
        self.deferred = kwargs

    async def send_message(self, content: str | None = None, **kwargs: Any) -> None:
        self.sent.append({"content": content, **kwargs})

    async def edit_message(self, **kwargs: Any) -> None:
        self.edits.append(kwargs)


class FakeFollowup:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, content: str | None = None, **kwargs: Any) -> None:
        self.sent.append({"content": content, **kwargs})


def role(role_id: int, *, managed: bool = False) -> SimpleNamespace:
    return SimpleNamespace(
        id=role_id,
        mention=f"<@&{role_id}>",
        managed=managed,
        is_default=lambda: role_id == GUILD,  # @everyone's id is the server's
    )


def member(user_id: int, *role_ids: int) -> SimpleNamespace:
    return SimpleNamespace(
        id=user_id, mention=f"<@{user_id}>", roles=[role(GUILD), *(role(r) for r in role_ids)]
    )


class FakeInteraction:
    def __init__(self, client: Any, user: Any, permissions: discord.Permissions) -> None:
        self.client = client
        self.user = user
        self.permissions = permissions
        self.guild_id = GUILD
        self.guild = SimpleNamespace(id=GUILD)
        self.response = FakeResponse()
        self.followup = FakeFollowup()

    @property
    def replies(self) -> list[dict[str, Any]]:
        return self.response.sent + self.followup.sent


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    storage = await Storage.open(tmp_path / "bot.db")
    yield storage
    await storage.close()


@pytest.fixture
def bot(storage: Storage, clock: FakeClock) -> SimpleNamespace:
    limits = LimitService(storage, default_limit=LimitSpec(5, D), clock=clock, clip_cost_usd=0.36)
    gallery = GalleryService(storage, clock)
    # The overview also reads the blocklist, the allowed channels and the approval rule.
    return SimpleNamespace(
        services=SimpleNamespace(
            limits=limits,
            gallery=gallery,
            blocklist=Blocklist(storage, clock),
            channels=AllowedChannels(storage, clock),
            approvals=Approvals(storage, clock),
        )
    )


@pytest.fixture
def cog(bot: SimpleNamespace) -> LimitsCog:
    return LimitsCog(bot)  # type: ignore[arg-type]


def command(cog: LimitsCog, name: str) -> app_commands.Command:
    found = cog.app_command.get_command(name)
    assert isinstance(found, app_commands.Command)
    return found


async def invoke(cog: LimitsCog, name: str, interaction: FakeInteraction, **options: Any) -> None:
    """As discord.py does: checks first (a failure raises), then the callback."""
    cmd = command(cog, name)
    assert await cmd._check_can_run(interaction)  # type: ignore[arg-type]
    await cmd.callback(cog, interaction, **options)  # type: ignore[arg-type]


def moderator(bot: Any) -> FakeInteraction:
    return FakeInteraction(bot, member(MOD_ID), discord.Permissions(manage_guild=True))


def plain_member(bot: Any, *role_ids: int) -> FakeInteraction:
    return FakeInteraction(
        bot, member(MEMBER_ID, *role_ids), discord.Permissions(send_messages=True)
    )


def assert_fits(reply: dict[str, Any]) -> None:
    assert reply["ephemeral"] is True
    mentions = reply["allowed_mentions"]
    assert not (mentions.everyone or mentions.users or mentions.roles)
    assert len(reply.get("content") or "") <= 2000
    embed: discord.Embed | None = reply.get("embed")
    if embed is not None:
        assert len(embed.title or "") <= 256
        assert len(embed.description or "") <= 4096
        assert len(embed.fields) <= 25
        assert all(len(f.value or "") <= 1024 for f in embed.fields)
        assert len(embed) <= 6000


def all_pages(reply: dict[str, Any]) -> list[discord.Embed]:
    view = reply.get("view")
    return view.pages if isinstance(view, Pages) else [reply["embed"]]


# --- the contract -----------------------------------------------------------------------


def test_group_schema_matches_the_product_contract(cog: LimitsCog) -> None:
    group = cog.app_command
    assert group.name == "videolimit"
    assert group.guild_only
    assert group.default_permissions == discord.Permissions(manage_guild=True)
    expected = {
        "set": [("user", "user", True), ("count", "integer", True), ("period", "string", True)],
        "clear": [("user", "user", True)],
        "show": [("user", "user", False)],
        "default": [("count", "integer", True), ("period", "string", True)],
        "role": [("role", "role", True), ("count", "integer", True), ("period", "string", True)],
    }
    for name, options in expected.items():
        params = command(cog, name).parameters
        assert [(p.name, p.type.name, p.required) for p in params] == options
        for p in params:
            if p.name == "count":
                assert p.min_value == 0
    for cmd in group.walk_commands():  # subcommand groups too (blocklist, channels)
        assert cmd.description and len(cmd.description) <= 100
        if isinstance(cmd, app_commands.Command):
            assert cmd.checks, f"{cmd.qualified_name} has no run-time check"


# --- permissions --------------------------------------------------------------------------


async def test_member_cannot_change_limits_and_nothing_changes(
    cog: LimitsCog, bot: Any, storage: Storage
) -> None:
    interaction = plain_member(bot)
    for name, options in [
        ("set", {"user": member(TARGET_ID), "count": 99, "period": "1d"}),
        ("role", {"role": role(OTHER_ROLE), "count": 99, "period": "1d"}),
        ("default", {"count": 99, "period": "1d"}),
        ("clear", {"user": member(TARGET_ID)}),
        ("modrole", {"role": role(OTHER_ROLE)}),
    ]:
        with pytest.raises(NotModerator) as caught:
            await invoke(cog, name, interaction, **options)
        assert isinstance(caught.value, app_commands.CheckFailure)
        assert "Nothing was changed" in caught.value.user_message
    assert interaction.replies == []
    assert await storage.limits.user_limit(GUILD, TARGET_ID) is None
    assert await storage.limits.role_limits(GUILD) == []
    assert (await storage.limits.guild_settings(GUILD)).default_limit is None
    assert await storage.limits.audit_log(GUILD) == []


async def test_moderator_sets_a_limit_and_it_is_audited(
    cog: LimitsCog, bot: Any, storage: Storage, clock: FakeClock
) -> None:
    interaction = moderator(bot)
    await invoke(cog, "set", interaction, user=member(TARGET_ID), count=2, period="6h")
    assert (await storage.limits.user_limit(GUILD, TARGET_ID)).spec == LimitSpec(2, 6 * 3600)
    [reply] = interaction.replies
    assert_fits(reply)
    assert "<@3>" in reply["content"] and "2 clips per 6 hours" in reply["content"]
    [entry] = await storage.limits.audit_log(GUILD)
    assert (entry.actor_id, entry.action, entry.target, entry.at) == (
        MOD_ID,
        "set_user_limit",
        "user:3",
        clock.time(),
    )


async def test_administrator_is_a_moderator(cog: LimitsCog, bot: Any, storage: Storage) -> None:
    interaction = FakeInteraction(bot, member(MOD_ID), discord.Permissions(administrator=True))
    await invoke(cog, "default", interaction, count=0, period="1w")
    assert (await storage.limits.guild_settings(GUILD)).default_limit == LimitSpec(0, 7 * D)


async def test_configured_moderator_role_may_use_the_commands(
    cog: LimitsCog, bot: Any, storage: Storage
) -> None:
    await invoke(cog, "modrole", moderator(bot), role=role(MOD_ROLE))
    helper = plain_member(bot, MOD_ROLE)
    await invoke(cog, "role", helper, role=role(OTHER_ROLE), count=4, period="1d")
    assert [r.spec for r in await storage.limits.role_limits(GUILD)] == [LimitSpec(4, D)]
    with pytest.raises(NotModerator):  # but cannot hand the moderator role to others
        await invoke(cog, "modrole", helper, role=role(OTHER_ROLE))
    with pytest.raises(NotModerator):
        await invoke(
            cog, "set", plain_member(bot, OTHER_ROLE), user=member(4), count=1, period="1d"
        )
    assert (await storage.limits.guild_settings(GUILD)).moderator_role_id == MOD_ROLE


@pytest.mark.parametrize("chosen", [role(GUILD), role(MOD_ROLE, managed=True)])
async def test_everyone_or_a_bot_role_cannot_become_the_moderator_role(
    cog: LimitsCog, bot: Any, storage: Storage, chosen: SimpleNamespace
) -> None:
    with pytest.raises(ValidationError, match="not @everyone"):
        await invoke(cog, "modrole", moderator(bot), role=chosen)
    assert (await storage.limits.guild_settings(GUILD)).moderator_role_id is None


async def test_a_role_set_to_zero_explains_that_it_is_not_a_block(cog: LimitsCog, bot: Any) -> None:
    interaction = moderator(bot)
    await invoke(cog, "role", interaction, role=role(OTHER_ROLE), count=0, period="1d")
    text = interaction.replies[-1]["content"]
    assert "that role's limit" in text and "/videolimit set" in text


async def test_budget_warns_when_the_price_per_clip_is_zero(
    storage: Storage, clock: FakeClock
) -> None:
    limits = LimitService(storage, default_limit=LimitSpec(5, D), clock=clock, clip_cost_usd=0)
    free = SimpleNamespace(services=SimpleNamespace(limits=limits))
    interaction = moderator(free)
    await invoke(LimitsCog(free), "budget", interaction, monthly_usd=10.0)  # type: ignore[arg-type]
    assert "never fills" in interaction.replies[-1]["embed"].description


@pytest.mark.parametrize(
    ("name", "options", "expected"),
    [
        (
            "clear",
            {"user": member(TARGET_ID)},
            f"<@{TARGET_ID}> had no own limit; nothing changed.",
        ),
        (
            "clearrole",
            {"role": role(OTHER_ROLE)},
            f"<@&{OTHER_ROLE}> had no limit; nothing changed.",
        ),
        (
            "cleardefault",
            {},
            (
                "This server had no default of its own (the bot's built-in default applies); "
                "nothing changed."
            ),
        ),
    ],
)
async def test_clearing_what_is_not_set_says_nothing_changed_and_records_nothing(
    cog: LimitsCog, bot: Any, storage: Storage, name: str, options: dict[str, Any], expected: str
) -> None:
    interaction = moderator(bot)
    await invoke(cog, name, interaction, **options)
    assert interaction.replies[-1]["content"] == expected
    assert await storage.limits.audit_log(GUILD) == []


async def test_setting_the_same_limit_again_says_nothing_changed(cog: LimitsCog, bot: Any) -> None:
    await invoke(cog, "set", moderator(bot), user=member(TARGET_ID), count=2, period="6h")
    interaction = moderator(bot)
    await invoke(cog, "set", interaction, user=member(TARGET_ID), count=2, period="6h")
    assert interaction.replies[-1]["content"] == (
        f"<@{TARGET_ID}>'s own limit is already 2 clips per 6 hours (`2/6h`); nothing changed."
    )


async def test_clearing_the_default_names_the_bots_built_in_default(
    cog: LimitsCog, bot: Any
) -> None:
    await invoke(cog, "default", moderator(bot), count=3, period="1d")
    interaction = moderator(bot)
    await invoke(cog, "cleardefault", interaction)
    text = interaction.replies[-1]["content"]
    assert "the bot's built-in default applies again" in text
    assert "operator" not in text


async def test_show_names_the_bots_built_in_default_without_jargon(
    cog: LimitsCog, bot: Any
) -> None:
    overview = moderator(bot)
    await invoke(cog, "show", overview)
    text = overview.replies[-1]["embed"].description
    assert "**Server default:** 5 clips per day (`5/1d`) (the bot's built-in default)" in text
    one = moderator(bot)
    await invoke(cog, "show", one, user=member(TARGET_ID))
    assert "from the bot's built-in default" in one.replies[-1]["embed"].description
    for reply in (overview.replies[-1], one.replies[-1]):
        assert "operator" not in reply["embed"].description.lower()


async def test_alerts_reply_names_every_kind_of_moderator_alert(cog: LimitsCog, bot: Any) -> None:
    interaction = moderator(bot)
    await invoke(cog, "alerts", interaction, channel=SimpleNamespace(id=77))
    assert interaction.replies[-1]["content"] == (
        "Moderator alerts (reached caps, a rejected Segmind key, exhausted credits) "
        "now go to <#77>."
    )


async def test_history_tells_each_change_in_words(
    cog: LimitsCog, bot: Any, storage: Storage, clock: FakeClock
) -> None:
    mod = moderator(bot)
    await invoke(cog, "set", mod, user=member(TARGET_ID), count=3, period="1d")
    await invoke(cog, "set", mod, user=member(TARGET_ID), count=0, period="1w")
    await invoke(cog, "clear", mod, user=member(TARGET_ID))
    await invoke(cog, "clear", mod, user=member(TARGET_ID))  # nothing left to clear
    await invoke(cog, "role", mod, role=role(OTHER_ROLE), count=1, period="1h")
    await invoke(cog, "clearrole", mod, role=role(OTHER_ROLE))
    await invoke(cog, "default", mod, count=4, period="1d")
    await invoke(cog, "cleardefault", mod)
    await invoke(cog, "budget", mod, daily_clips=20, monthly_usd=50.0)
    await invoke(cog, "budget", mod, daily_clips=0)
    await invoke(cog, "modrole", mod, role=role(MOD_ROLE))
    await invoke(cog, "alerts", mod, channel=SimpleNamespace(id=1576243369028485134))
    interaction = moderator(bot)
    await invoke(cog, "history", interaction)
    [reply] = interaction.replies
    assert_fits(reply)
    when = f"<t:{int(clock.time())}:R> <@{MOD_ID}>"
    assert reply["embed"].description.split("\n") == [
        f"{when} set the alert channel to <#1576243369028485134>",
        f"{when} set the moderator role to <@&{MOD_ROLE}>",
        f"{when} removed the daily clip cap (was: 20)",
        f"{when} set the daily clip cap to 20 and set the monthly budget to $50.00",
        (
            f"{when} removed the server default (was: 4 clips per day); "
            "the bot's built-in default applies"
        ),
        f"{when} set the server default to 4 clips per day (was: not set)",
        f"{when} removed the limit for <@&{OTHER_ROLE}> (was: 1 clip per hour)",
        f"{when} set the limit for <@&{OTHER_ROLE}> to 1 clip per hour (was: not set)",
        f"{when} removed <@{TARGET_ID}>'s limit (was: blocked)",
        f"{when} blocked <@{TARGET_ID}> from making videos (was: 3 clips per day)",
        f"{when} set <@{TARGET_ID}>'s limit to 3 clips per day (was: not set)",
    ]


async def test_history_tells_rows_stored_by_older_versions_in_words(
    cog: LimitsCog, bot: Any, storage: Storage
) -> None:
    for detail in ("default: unset -> unset", "monthly_budget_usd: 12.5 -> unset", "odd row"):
        await storage.limits.audit(
            GUILD, actor_id=MOD_ID, action="old_action", target="server", detail=detail, at=10.0
        )
    interaction = moderator(bot)
    await invoke(cog, "history", interaction)
    assert interaction.replies[-1]["embed"].description.split("\n") == [
        f"<t:10:R> <@{MOD_ID}> old action server: odd row",
        f"<t:10:R> <@{MOD_ID}> removed the monthly budget (was: $12.50)",
        f"<t:10:R> <@{MOD_ID}> left the server default as it was (not set); nothing changed",
    ]


async def test_bad_period_gets_a_clear_error_and_changes_nothing(
    cog: LimitsCog, bot: Any, storage: Storage
) -> None:
    interaction = moderator(bot)
    with pytest.raises(ValidationError) as raised:
        await invoke(cog, "set", interaction, user=member(TARGET_ID), count=2, period="2 days")
    # The bot's one error handler shows this text, ephemerally (see tests/bot for the wire).
    text, unexpected = describe_error(raised.value)
    assert not unexpected
    assert "`2 days` is not a period" in text
    assert "`30m`, `6h`, `1d` or `1w`" in text
    assert await storage.limits.user_limit(GUILD, TARGET_ID) is None
    assert await storage.limits.audit_log(GUILD) == []


# --- rendering ----------------------------------------------------------------------------


async def _job(storage: Storage, user: int, at: float, prompt: str) -> None:
    await storage.jobs.insert(
        NewJob(GUILD, 9, user, VideoRequest.create(prompt, seed=1), created_at=at, cost_usd=0.36)
    )


async def test_show_user_gives_limit_usage_and_next_slot(
    cog: LimitsCog, bot: Any, storage: Storage, clock: FakeClock
) -> None:
    await storage.limits.set_role_limit(GUILD, OTHER_ROLE, LimitSpec(2, D), actor_id=MOD_ID, at=0.0)
    await _job(storage, TARGET_ID, clock.time() - 7200, "one")
    await _job(storage, TARGET_ID, clock.time() - 3600, "two")
    interaction = moderator(bot)
    await invoke(cog, "show", interaction, user=member(TARGET_ID, OTHER_ROLE))
    [reply] = interaction.replies
    assert_fits(reply)
    text = reply["embed"].description
    assert "2 clips per day" in text and f"role <@&{OTHER_ROLE}>" in text
    assert "2 of 2" in text
    assert f"<t:{int(clock.time() - 7200 + D)}:R>" in text


async def test_show_without_user_paginates_every_override_within_limits(
    cog: LimitsCog, bot: Any, storage: Storage
) -> None:
    for user_id in range(1000, 1300):
        await storage.limits.set_user_limit(
            GUILD, user_id, LimitSpec(user_id % 7, D), actor_id=MOD_ID, at=0.0
        )
    for role_id in range(2000, 2060):
        await storage.limits.set_role_limit(
            GUILD, role_id, LimitSpec(3, 3600), actor_id=MOD_ID, at=0.0
        )
    interaction = moderator(bot)
    await invoke(cog, "show", interaction)
    [reply] = interaction.replies
    assert_fits(reply)
    pages = all_pages(reply)
    assert len(pages) > 1
    for page in pages:
        assert_fits({**reply, "embed": page})
        assert "Server default" in page.description
    text = "\n".join(page.description for page in pages)
    assert all(f"<@{u}>" in text for u in range(1000, 1300))
    assert all(f"<@&{r}>" in text for r in range(2000, 2060))


async def test_usage_report_fits_with_long_prompts_and_many_members(
    cog: LimitsCog, bot: Any, storage: Storage, clock: FakeClock
) -> None:
    for user_id in range(100):
        await _job(storage, 5000 + user_id, clock.time() - 60, "@everyone **" + "x" * 1988)
    interaction = moderator(bot)
    await invoke(cog, "usage", interaction, period="1d", user=None)
    [reply] = interaction.replies
    pages = all_pages(reply)
    for page in pages:
        assert_fits({**reply, "embed": page})
    text = "\n".join(page.description for page in pages)
    assert "100 clips, $36.00" in text
    assert "This month" in text


async def test_usage_names_job_states_in_moderator_words_with_the_failure_reason(
    cog: LimitsCog, bot: Any, storage: Storage, clock: FakeClock
) -> None:
    states = [
        JobState.QUEUED,
        JobState.SUBMITTED,
        JobState.DOWNLOADED,
        JobState.DELIVERED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.EXPIRED,
        JobState.UNKNOWN,
    ]
    for number, state in enumerate(states, 1):
        await _job(storage, TARGET_ID, clock.time() - 60, f"clip {number}")
        if state is not JobState.QUEUED:
            error = (
                "The video service is *busy* right now. " * 5 if state is JobState.FAILED else None
            )
            await storage.jobs.update(number, now=clock.time(), state=state, error=error)
    interaction = moderator(bot)
    await invoke(cog, "usage", interaction, period="1d", user=None)
    text = interaction.replies[-1]["embed"].description
    expected = {
        "clip 1": "**waiting**",
        "clip 2": "**in progress**",
        "clip 3": "**in progress**",
        "clip 4": "**posted**",
        "clip 5": "**failed** (The video service is \\*busy\\* right now. The video service is…)",
        "clip 6": "**cancelled**",
        "clip 7": "**expired**",
        "clip 8": "**outcome unknown (counted)**",
    }
    for prompt, words in expected.items():
        assert f"<@{TARGET_ID}> {words}: {prompt}" in text
    for raw in ("submitted", "downloaded", "delivered", "unknown**"):
        assert f"**{raw}" not in text


async def test_usage_and_budget_say_one_clip_in_the_singular(
    cog: LimitsCog, bot: Any, storage: Storage, clock: FakeClock
) -> None:
    await _job(storage, TARGET_ID, clock.time() - 60, "just one")
    interaction = moderator(bot)
    await invoke(cog, "usage", interaction, period="1d", user=None)
    text = interaction.replies[-1]["embed"].description
    assert "**Last day:** 1 clip, $0.36" in text
    assert "**Today (UTC):** 1 clip (no daily cap)" in text
    assert "$0.36 spent on 1 clip (no monthly budget)" in text
    assert "__Latest 1 generation__" in text
    assert "1 clips" not in text and "1 generations" not in text


async def test_usage_with_bad_period_names_accepted_forms(cog: LimitsCog, bot: Any) -> None:
    interaction = moderator(bot)
    with pytest.raises(ValidationError) as raised:
        await invoke(cog, "usage", interaction, period="forever", user=None)
    assert "`30m`, `6h`, `1d` or `1w`" in describe_error(raised.value)[0]
    assert interaction.replies == []


async def test_budget_sets_caps_and_shows_spend(cog: LimitsCog, bot: Any, storage: Storage) -> None:
    interaction = moderator(bot)
    await invoke(cog, "budget", interaction, daily_clips=20, monthly_usd=50.0)
    [reply] = interaction.replies
    assert_fits(reply)
    assert "daily cap of 20" in reply["embed"].description
    assert "$50.00 budget" in reply["embed"].description
    settings = await storage.limits.guild_settings(GUILD)
    assert (settings.daily_clip_cap, settings.monthly_budget_usd) == (20, 50.0)


async def test_pages_answer_only_the_moderator_who_asked(bot: Any) -> None:
    pages = Pages([discord.Embed(description="one"), discord.Embed(description="two")], MOD_ID)
    stranger = plain_member(bot)
    assert not await pages.interaction_check(stranger)  # type: ignore[arg-type]
    assert stranger.response.sent[0]["ephemeral"] is True
    owner = moderator(bot)
    assert await pages.interaction_check(owner)  # type: ignore[arg-type]
    await pages.next.callback(owner)  # type: ignore[arg-type]
    assert owner.response.edits[0]["embed"].description == "two"
    assert pages.next.disabled and not pages.previous.disabled


# --- telling moderators --------------------------------------------------------------------


class FakeChannel:
    def __init__(self, channel_id: int, *, can_send: bool = True, fails: bool = False) -> None:
        self.id = channel_id
        self.can_send = can_send
        self.fails = fails
        self.sent: list[str] = []

    def permissions_for(self, _: Any) -> discord.Permissions:
        return discord.Permissions(send_messages=self.can_send)

    async def send(self, text: str, **_: Any) -> None:
        if self.fails:
            raise discord.HTTPException(SimpleNamespace(status=403, reason="Forbidden"), "no")
        self.sent.append(text)


def fake_guild(channels: dict[int, FakeChannel], system: FakeChannel | None, owner: Any) -> Any:
    return SimpleNamespace(
        id=GUILD,
        name="Test server",
        get_channel=channels.get,
        system_channel=system,
        me=object(),
        owner=owner,
        owner_id=42,
    )


async def notify(bot: Any, guild: Any, text: str) -> bool:
    return await notify_moderators(bot.services.limits, bot, guild, text)


async def test_notify_goes_to_the_alert_channel_once(bot: Any, storage: Storage) -> None:
    await bot.services.limits.set_alert_channel(GUILD, 77, actor_id=MOD_ID)
    alerts, system = FakeChannel(77), FakeChannel(78)
    assert await notify(bot, fake_guild({77: alerts}, system, None), "cap reached")
    assert (alerts.sent, system.sent) == (["cap reached"], [])


async def test_notify_falls_back_to_system_channel_then_owner(bot: Any) -> None:
    system = FakeChannel(78, can_send=False)
    owner = FakeChannel(42)
    assert await notify(bot, fake_guild({}, system, owner), "cap reached")
    assert system.sent == [] and owner.sent and "cap reached" in owner.sent[0]


async def test_notify_never_raises(bot: Any) -> None:
    system = FakeChannel(78, fails=True)
    owner = FakeChannel(42, fails=True)
    assert not await notify(bot, fake_guild({}, system, owner), "cap reached")
