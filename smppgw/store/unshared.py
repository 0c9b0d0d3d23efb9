"""The inbox claims of a store that one process holds (SQLite, memory): claims that always hold.

Only one dispatcher reads such a store, so nothing is kept from another
node: `IStore.claim_inbox` lists the rows as `IStore.inbox` does, each under
the claim (node, 0), a renewal holds every row it is given, and the stores'
`bump_inbox` and `remove_inbox` take the claim and ignore it.  No statement
is added per row.
"""

from __future__ import annotations

from dataclasses import replace

from smppgw.store.interfaces import InboxClaim, InboxRow


class UnsharedInbox:
    """`claim_inbox` and `renew_inbox` over a store's own `inbox` (see the module docstring)."""

    shared = False

    def inbox(self, limit: int = 1000, after_id: int = 0) -> list[InboxRow]:
        raise NotImplementedError

    def claim_inbox(self, node: str, limit: int, lease: float, after_id: int = 0,
                    kinds: tuple[str, ...] | None = None) -> list[InboxRow]:
        """The rows `inbox` lists (of ``kinds`` only, if given), each claimed by ``node`` at epoch 0."""
        claim = InboxClaim(node, 0)
        claimed: list[InboxRow] = []
        while limit < 0 or len(claimed) < limit:
            page = self.inbox(limit if kinds is None else max(limit, 200), after_id)
            claimed.extend(replace(row, claim=claim) for row in page
                           if kinds is None or row.kind in kinds)
            if kinds is None or not page:
                break
            after_id = page[-1].id
        return claimed if limit < 0 else claimed[:limit]

    def renew_inbox(self, node: str, rows: list[InboxRow], lease: float) -> set[int]:
        """Every row given: its claim never lapses."""
        return {row.id for row in rows}
