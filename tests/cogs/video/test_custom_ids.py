"""Job buttons' custom ids: signed with the database's secret, verified on click."""

from __future__ import annotations

import pytest

from cogs.video.buttons import JobButton
from cogs.video.custom_ids import CustomIds, new_secret


def test_an_id_verifies_only_with_its_own_database_action_and_job() -> None:
    ours, theirs = CustomIds(new_secret()), CustomIds(new_secret())
    custom_id = ours.make("delete", 1)
    _, action, job, signature = custom_id.split(":")
    assert (action, job) == ("delete", "1") and len(custom_id) <= 100
    assert ours.verify("delete", 1, signature)
    assert not theirs.verify("delete", 1, signature)  # another database's button
    assert not ours.verify("delete", 2, signature)
    assert not ours.verify("share", 1, signature)
    assert not ours.verify("delete", 1, None) and not ours.verify("delete", 1, "")


@pytest.mark.parametrize(
    ("custom_id", "signature"),
    [("vjob:delete:12:abcDEF_-0123", "abcDEF_-0123"), ("vjob:delete:12", None)],
)
def test_signed_and_older_unsigned_ids_are_both_recognised(
    custom_id: str, signature: str | None
) -> None:
    match = JobButton.__discord_ui_compiled_template__.fullmatch(custom_id)
    assert match is not None and match["sig"] == signature and match["job"] == "12"


def test_the_secret_never_shows_in_a_repr() -> None:
    secret = new_secret()
    assert secret not in repr(CustomIds(secret))
