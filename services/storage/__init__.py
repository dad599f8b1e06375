"""The one package that writes SQL: the database (SQLite or PostgreSQL) and a store per kind
of data."""

from __future__ import annotations

from pathlib import Path

from services.storage.approvals import ApprovalStore
from services.storage.blocklist import BlocklistStore
from services.storage.channels import ChannelStore
from services.storage.database import Database, Executor, Transaction
from services.storage.gallery import GalleryStore
from services.storage.jobs import JobStore, LeaseLost, NewJob
from services.storage.leases import LeaseStore
from services.storage.limits import LimitStore
from services.storage.meta import MetaStore
from services.storage.notice_claims import FailureNoticeClaims
from services.storage.timings import TimingStore

__all__ = [
    "ApprovalStore",
    "BlocklistStore",
    "ChannelStore",
    "Database",
    "Executor",
    "FailureNoticeClaims",
    "GalleryStore",
    "JobStore",
    "LeaseLost",
    "LeaseStore",
    "LimitStore",
    "MetaStore",
    "NewJob",
    "Storage",
    "TimingStore",
    "Transaction",
]


class Storage:
    """The database and its stores, opened and migrated together."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.jobs = JobStore(db)
        self.leases = LeaseStore(db)
        self.approvals = ApprovalStore(db)
        self.blocklist = BlocklistStore(db)
        self.channels = ChannelStore(db)
        self.gallery = GalleryStore(db)
        self.limits = LimitStore(db)
        self.meta = MetaStore(db)
        self.failure_claims = FailureNoticeClaims(db)
        self.timings = TimingStore(db)

    @classmethod
    async def open(cls, location: Path | str) -> Storage:
        """A SQLite file (a Path or sqlite:/// URL) or a postgresql:// database, migrated."""
        return cls(await Database.open(location))

    async def close(self) -> None:
        await self.db.close()
