"""Long lists as pages of embeds, with Previous/Next buttons for the member who asked."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import discord

PAGE_CHARS = 3500  # below the 4096 of an embed description, with room for a header
PAGE_LINES = 20
COLOUR = discord.Colour.blurple()


def paginate(title: str, header: Sequence[str], lines: Sequence[str]) -> list[discord.Embed]:
    """Embeds of at most PAGE_LINES lines / PAGE_CHARS characters, the header on each page."""
    head = "\n".join(header)
    chunks: list[list[str]] = [[]]
    size = len(head)
    for line in lines:
        line = line if len(line) <= 1000 else line[:999] + "…"
        chunk = chunks[-1]
        if chunk and (len(chunk) >= PAGE_LINES or size + len(line) + 1 > PAGE_CHARS):
            chunks.append([])
            chunk, size = chunks[-1], len(head)
        chunk.append(line)
        size += len(line) + 1
    pages = []
    for number, chunk in enumerate(chunks, 1):
        body = "\n".join(part for part in (head, "\n".join(chunk)) if part)
        embed = discord.Embed(
            title=title[:256], description=body or "Nothing to show.", colour=COLOUR
        )
        if len(chunks) > 1:
            embed.set_footer(text=f"Page {number} of {len(chunks)}")
        pages.append(embed)
    return pages


class Pages(discord.ui.View):
    """Previous/next buttons over embeds, for the moderator who asked only."""

    def __init__(
        self, pages: Sequence[discord.Embed], owner_id: int, *, timeout: float = 600
    ) -> None:
        super().__init__(timeout=timeout)
        self.pages = list(pages)
        self.owner_id = owner_id
        # The command's interaction: its token edits the reply, within its 15 minutes.
        self.message_of: discord.Interaction | None = None
        self.index = 0
        self._sync_buttons()

    def _sync_buttons(self) -> None:
        self.previous.disabled = self.index == 0
        self.next.disabled = self.index >= len(self.pages) - 1

    async def on_timeout(self) -> None:
        # A click after the timeout would go unanswered: take the buttons away instead.
        if self.message_of is not None:
            with contextlib.suppress(discord.HTTPException):
                await self.message_of.edit_original_response(view=None)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id == self.owner_id:
            return True
        await interaction.response.send_message(
            "These buttons belong to the moderator who asked.", ephemeral=True
        )
        return False

    async def _show(self, interaction: discord.Interaction, index: int) -> None:
        self.index = max(0, min(index, len(self.pages) - 1))
        self._sync_buttons()
        await interaction.response.edit_message(embed=self.pages[self.index], view=self)

    @discord.ui.button(label="Previous", style=discord.ButtonStyle.secondary)
    async def previous(
        self, interaction: discord.Interaction, button: discord.ui.Button[Pages]
    ) -> None:
        await self._show(interaction, self.index - 1)

    @discord.ui.button(label="Next", style=discord.ButtonStyle.secondary)
    async def next(
        self, interaction: discord.Interaction, button: discord.ui.Button[Pages]
    ) -> None:
        await self._show(interaction, self.index + 1)
