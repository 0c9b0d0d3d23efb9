"""What every `IStore` must do, as tests: mix `StoreConformance` into a test case.

A test case for one implementation mixes it into
``twisted.trial.unittest.SynchronousTestCase`` and gives it ``make_store``,
and, where the implementation keeps its rows across a close, ``reopen``
(without it the tests of a restart are skipped) and ``turn`` (a reactor
turn, for a store that commits once per turn); see `base.Conformance`.  The
tests assert only what a caller of `IStore` sees, so the SQLite store, the
memory store and any later one answer them alike.
"""

from smppgw.store.conformance.base import DAY, HOUR
from smppgw.store.conformance.claims import ClaimsConformance
from smppgw.store.conformance.inbound import InboundConformance
from smppgw.store.conformance.outbound import OutboundConformance
from smppgw.store.conformance.upkeep import UpkeepConformance


class StoreConformance(OutboundConformance, InboundConformance, UpkeepConformance,
                       ClaimsConformance):
    """Every conformance test, run against ``self.make_store()``."""


__all__ = ["DAY", "HOUR", "StoreConformance"]
