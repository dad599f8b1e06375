"""The one safe send: whatever a caller passes, Discord gets a message it accepts."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from cogs.replies import reply
from cogs.words import CONTENT_MAX


class Response:
    """An interaction's response that records what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def is_done(self) -> bool:
        return bool(self.sent)

    async def send_message(self, **kwargs: Any) -> None:
        self.sent.append(kwargs)


async def test_text_over_discords_limit_is_cut_to_fit_and_marked() -> None:
    response = Response()
    interaction: Any = SimpleNamespace(response=response)

    await reply(interaction, "x" * 2500)

    [sent] = response.sent
    assert len(sent["content"]) == CONTENT_MAX
    assert sent["content"].endswith("…") and sent["ephemeral"]


async def test_text_within_the_limit_is_sent_unchanged() -> None:
    response = Response()
    interaction: Any = SimpleNamespace(response=response)

    await reply(interaction, "y" * CONTENT_MAX)

    assert response.sent[0]["content"] == "y" * CONTENT_MAX
