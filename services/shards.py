"""Which Discord shards this process runs: SHARD_COUNT and SHARD_IDS, read and checked.

Discord splits a bot's servers between gateway connections by ``(guild_id >> 22) % count``;
several processes share the servers by each running some of those shards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Discord asks bots past 150,000 servers to use more; a larger count is a typo, not a plan.
MAX_SHARD_COUNT = 1024
IDS_HINT = "use shard ids and ranges separated by commas, like 0,2-3"
_ITEM = re.compile(r"(\d+)(?:\s*-\s*(\d+))?")


def shard_of(guild_id: int, count: int) -> int:
    """The shard Discord sends a server's events on (its documented formula)."""
    return (guild_id >> 22) % count


@dataclass(frozen=True)
class ShardPlan:
    """This process's share of the gateway: ``ids`` (sorted, distinct) of ``count`` shards."""

    count: int
    ids: tuple[int, ...]

    @classmethod
    def every_shard(cls, count: int) -> ShardPlan:
        return cls(count, tuple(range(count)))

    @property
    def holds_first_shard(self) -> bool:
        """Shard 0 also carries direct messages; it is one process's, whatever the split."""
        return 0 in self.ids

    def owns(self, guild_id: int) -> bool:
        """Whether this server's events reach this process."""
        return shard_of(guild_id, self.count) in self.ids

    def describe(self) -> str:
        """As an operator writes SHARD_IDS: ``shards 0, 2-3 of 4``."""
        ranges: list[str] = []
        start = previous = self.ids[0]
        for shard in (*self.ids[1:], None):
            if shard is not None and shard == previous + 1:
                previous = shard
                continue
            ranges.append(str(start) if start == previous else f"{start}-{previous}")
            if shard is not None:
                start = previous = shard
        noun = "shard" if len(self.ids) == 1 else "shards"
        return f"{noun} {', '.join(ranges)} of {self.count}"


def parse_shard_ids(text: str, count: int) -> tuple[int, ...]:
    """``0,2-3`` as sorted shard ids below ``count``; ValueError says what is wrong with it."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ValueError(IDS_HINT)
    chosen: set[int] = set()
    for item in items:
        matched = _ITEM.fullmatch(item)
        if matched is None:
            raise ValueError(IDS_HINT)
        first = int(matched[1])
        last = int(matched[2]) if matched[2] is not None else first
        if last < first:
            raise ValueError(f"the range {first}-{last} runs backwards: write {last}-{first}")
        if last >= count:
            raise ValueError(
                f"shard {last} is not below SHARD_COUNT={count} (ids run from 0 to {count - 1})"
            )
        for shard in range(first, last + 1):
            if shard in chosen:
                raise ValueError(f"shard {shard} is listed twice")
            chosen.add(shard)
    return tuple(sorted(chosen))
