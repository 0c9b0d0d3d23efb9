"""What lets several gateway nodes share one PostgreSQL database.

Each module is one concept, usable on its own, each call a Deferred:

- `connection`: a component's own database connection (a thread of its own,
  or the caller's thread for tests);
- `leases`: leases with epochs on the database's clock, and the fence a
  leaseholder's write checks in its transaction; `renewer` keeps one;
- `binds`: a server's bind slots, ``max_binds`` of them across the nodes, each
  node binding while it holds one and standing by otherwise;
- `notifier`: LISTEN/NOTIFY on the reactor, what one node committed heard by the
  others at once;
- `claims`: the queued messages of the servers a node binds, claimed for its
  queues, and the outcomes other nodes record, heard by the node that waits;
- `election`: the one node that runs the maintenance jobs.

The tables are in `smppgw.store.postgres.schema`.
"""

from smppgw.cluster.leases import LeaseKey, LeaseLost, Leases, Tenure

__all__ = ["LeaseKey", "LeaseLost", "Leases", "Tenure"]
