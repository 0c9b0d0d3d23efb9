"""The hooks every conformance test uses: a new store, a restart, a reactor turn."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.trial.unittest import SkipTest

if TYPE_CHECKING:
    from twisted.trial.unittest import SynchronousTestCase

    _TestCase = SynchronousTestCase
else:
    _TestCase = object

HOUR = 3600.0
DAY = 86400.0


class Conformance(_TestCase):
    """What an implementation's test case gives the conformance tests."""

    def make_store(self, retention: float = 7 * DAY) -> Any:
        """Return a new, empty store keeping finished requests ``retention`` seconds; it is
        closed at the end of the test."""
        raise NotImplementedError

    def reopen(self, store: Any) -> Any:
        """Close ``store`` and open its storage again, as a restarted gateway does."""
        raise SkipTest(f"{type(store).__name__} keeps nothing once closed: no restart to survive")

    def turn(self) -> None:
        """Let the reactor turn once, so that a store committing per turn commits."""

    def written(self, write: Any) -> Any:
        """The value a write's Deferred fires with once durable (after a turn)."""
        self.turn()
        return self.successResultOf(write)

    def refused(self, write: Any, *errors: type[BaseException]) -> Any:
        """The error a write's Deferred fails with (one of `errors`)."""
        self.turn()
        return self.failureResultOf(write, *errors).value

    def setUp(self) -> None:
        self.store = self.make_store()

    def restart(self) -> Any:
        self.store = self.reopen(self.store)
        return self.store
