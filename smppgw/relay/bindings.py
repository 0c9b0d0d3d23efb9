"""The rows of SMS Dialogs: a binding (phone, letter) -> IM address, where bindings are
kept (a `BindingStore`: the gateway's store, or `MemoryBindingStore`), and the errors
of the dialogs module.  `smppgw.relay.dialogs.DialogTable` is what uses them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from twisted.internet.defer import Deferred
from twisted.logger import Logger

_log = Logger()


class DialogError(ValueError):
    """Base class for bad input given to the dialogs module."""


class BadPhoneNumber(DialogError):
    """A phone number (or SMS sender) that cannot key a binding."""


class BadIMAddress(DialogError):
    """An IM address that cannot be written into an ``@x=address`` prefix."""


class BadDialogTimeout(DialogError):
    """A dialog timeout that is not a positive number of seconds."""


class UnknownBinding(DialogError, LookupError):
    """A (phone, letter) that holds no live binding."""


@dataclass(frozen=True)
class Binding:
    """One remembered dialog: replies from ``phone`` with ``letter`` go to ``address``."""

    phone: str
    address: str
    letter: str
    last_used: float


class BindingStore(Protocol):
    """Where bindings survive a restart (``smppgw.store.sqlite`` provides the SQLite one)."""

    def load_bindings(self) -> Iterable[Binding]: ...

    def save_binding(self, binding: Binding) -> Deferred[None] | None:
        """Insert ``binding``, replacing any binding with the same (phone, letter); a store
        returns a Deferred that fires once that is durable."""

    def delete_binding(self, phone: str, letter: str) -> Deferred[None] | None: ...


def _kept(written: Deferred[None] | None) -> None:
    """A binding's write: one that fails is said once, and the table goes on (the binding
    lives on in memory; a restart before it is written again forgets it)."""
    if written is not None:
        written.addErrback(lambda failure: _log.warn(
            "cannot store a dialog binding: {error}", error=failure.getErrorMessage()))


class MemoryBindingStore:
    """A :class:`BindingStore` kept in a dict: for tests, and for running without a store."""

    def __init__(self, bindings: Iterable[Binding] = ()) -> None:
        self.rows: dict[tuple[str, str], Binding] = {}
        for binding in bindings:
            self.save_binding(binding)

    def load_bindings(self) -> Iterable[Binding]:
        return list(self.rows.values())

    def save_binding(self, binding: Binding) -> None:
        self.rows[(binding.phone, binding.letter)] = binding

    def delete_binding(self, phone: str, letter: str) -> None:
        self.rows.pop((phone, letter), None)
