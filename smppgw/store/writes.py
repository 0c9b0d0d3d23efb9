"""A store's writes on the hot path, and what turns a plain write into what `IStore` says.

`Then` is what a message's writes (`IStore.add_outbound`, `set_message_id`,
`finish`) are given instead of returning a Deferred; `then_deferred` makes a
Deferred-returning write honour it; `durable_when_done` makes a write of a
store that is durable when it returns (in memory) return either.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed

from smppgw.store.interfaces import DuplicateRequest, StoreError, UnknownRow

#: What a hot-path write (`IStore.add_outbound`, `set_message_id`, `finish`) is given
#: instead of returning a Deferred: ``(done, failed)``; ``done()`` is called (with no
#: argument) once the write is durable, ``failed(error)`` with the store's error
#: (`StoreError`, `DuplicateRequest`, `UnknownRow`) if it cannot be, at once for an
#: error known at once.  No Deferred is made: a message's writes are the gateway's
#: busiest path.
Then = tuple[Callable[[], object], Callable[[Exception], object]]


def then_deferred(written: Deferred[Any], then: Then | None) -> Deferred[Any] | None:
    """A write's Deferred as its caller asked for it: itself, or (given ``then``) None,
    with ``then`` told when it fires."""
    if then is None:
        return written
    done, failed = then
    written.addCallbacks(lambda _: done(), lambda failure: failed(failure.value))
    return None


def deferred(written: Deferred[Any] | None) -> Deferred[Any]:
    """The Deferred of a write made without ``then`` (for the type checker)."""
    assert written is not None
    return written


def durable_when_done(write: Callable[..., Any]) -> Callable[..., Any]:
    """Make a write of a store whose writes are durable when they return (each its own
    transaction, or kept in memory) return what `IStore` says: a Deferred, fired with the
    write's value, or failed with the store's error (`StoreError`, `DuplicateRequest`,
    `UnknownRow`); or, given ``then`` (see `Then`), None.  `BadStoreInput`, the caller's
    mistake, is raised."""

    @wraps(write)
    def written(*args: Any, then: Then | None = None, **kw: Any) -> Deferred[Any] | None:
        try:
            value = write(*args, **kw)
        except (StoreError, DuplicateRequest, UnknownRow) as error:
            if then is None:
                return fail(error)
            then[1](error)
            return None
        if then is None:
            return succeed(value)
        then[0]()
        return None

    return written
