"""The gateway's persistence: one SQLite file (stdlib ``sqlite3``, WAL mode).

It holds the outbound queue (SendSignal requests, idempotent by
``request_id``), the inbox of messages and delivery reports waiting for a
host, the fragments of concatenated SMS being reassembled, and the SMS
Dialogs bindings (it is the :class:`smppgw.relay.dialogs.BindingStore`).
The connection and its group commit are in `database`, the tables in
`outbound` and `inbound`, the files and their lock in `files`.
"""

from __future__ import annotations

from zope.interface import implementer

from smppgw.store.interfaces import IGroupCommit, IStore
from smppgw.store.sqlite.inbound import InboundTables
from smppgw.store.sqlite.outbound import OutboundTables


@implementer(IStore, IGroupCommit)
class Store(OutboundTables, InboundTables):
    """The SQLite store: outbound queue, inbox, fragments and dialog bindings."""

    def counts(self) -> dict[str, int]:
        """Return how many unfinished requests, inbox rows, fragments and bindings are stored."""
        queries = {
            "unfinished": "SELECT COUNT(*) FROM outbound WHERE outcome IS NULL",
            "inbox": "SELECT COUNT(*) FROM inbox",
            "fragments": "SELECT COUNT(*) FROM fragment",
            "bindings": "SELECT COUNT(*) FROM binding",
        }
        return {name: self._reading(sql).fetchone()[0] for name, sql in queries.items()}

