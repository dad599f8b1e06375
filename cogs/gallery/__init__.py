"""The gallery: publishing clips to a server's gallery channel (``publisher``).

Set with `/videolimit gallery`; the Publish button and the presenter's auto mode use the
publisher through ``bot.presenter.gallery``.
"""

from __future__ import annotations

from cogs.gallery.publisher import GalleryPublisher, Published

__all__ = ["GalleryPublisher", "Published"]
