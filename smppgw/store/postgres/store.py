"""The PostgreSQL store: the gateway's rows in a database that several nodes can share.

`PostgresStore` keeps what the SQLite store keeps (the outbound queue,
idempotent by ``request_id``; the inbox for the hosts; fragments of long
inbound messages; SMS Dialogs bindings) and answers the store conformance
suite as it does, the settings the nodes share (`settings`), and the claims by
which the nodes share out the servers' requests (`claims`).  Its writes are committed off the reactor's thread, those in
flight together, and their Deferreds fire once committed (see `writer`); reads
wait for the writes made before them (see `database`); the tables and their
version are in `schema`.
"""

from __future__ import annotations

from zope.interface import implementer

from smppgw.store.claiming import IOutboundClaims
from smppgw.store.interfaces import IGroupCommit, IStore
from smppgw.store.postgres.bindings import BindingTables
from smppgw.store.postgres.claims import ClaimTables
from smppgw.store.postgres.inbound import InboundTables
from smppgw.store.postgres.settings import SettingsTable


@implementer(IStore, IGroupCommit, IOutboundClaims)
class PostgresStore(ClaimTables, InboundTables, BindingTables, SettingsTable):
    """The store on a PostgreSQL database named by a libpq URL (``postgresql://user@host/db``).

    The password comes from the URL, libpq's environment (``PGPASSWORD``,
    ``PGPASSFILE``) or its password file; ``path`` names the database without it.
    """

    def counts(self) -> dict[str, int]:
        """Return how many unfinished requests, inbox rows, fragments and bindings are kept."""
        ((unfinished, inbox, fragments, bindings),) = self._reading(
            "SELECT (SELECT COUNT(*) FROM outbound WHERE outcome IS NULL),"
            " (SELECT COUNT(*) FROM inbox), (SELECT COUNT(*) FROM fragment),"
            " (SELECT COUNT(*) FROM binding)"
        )
        return {"unfinished": unfinished, "inbox": inbox, "fragments": fragments,
                "bindings": bindings}
