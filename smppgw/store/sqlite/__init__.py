"""The embedded store: one SQLite file, held by one process at a time."""

from smppgw.store.sqlite.checkpoint import WRITER_CHECKPOINT_PAGES, Checkpointer
from smppgw.store.sqlite.files import private_folder
from smppgw.store.sqlite.outbound import DuplicateRequest
from smppgw.store.sqlite.store import Store

__all__ = ["WRITER_CHECKPOINT_PAGES", "Checkpointer", "DuplicateRequest", "Store", "private_folder"]
