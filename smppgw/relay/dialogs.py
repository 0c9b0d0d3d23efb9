"""SMS Dialogs: which IM user a phone's reply belongs to.

When an IM user sends to a phone, the SMS gets a prefix naming a letter:
``@a=smith@company.dom `` the first time, ``@a `` afterwards. The pair
(phone, letter) -> IM address is a *binding*. A reply starting with ``@a:``
or ``@a `` goes to that binding's address; a reply with no prefix goes to
the phone's only binding, if it has exactly one. ``@@ `` asks for the
server's default recipient instead. A binding not used in either direction
for the dialog timeout is retired.

This module is pure: time comes from an injected clock
(``IReactorTime.seconds``) and persistence from a
:class:`smppgw.relay.bindings.BindingStore`.
:func:`route_incoming` applies the server record's Dialogs and Recipient
settings on top of the table.
"""

from __future__ import annotations

import functools
import heapq
import re
import string
from dataclasses import dataclass
from typing import Protocol

from twisted.logger import Logger

from smppgw.relay.bindings import (
    BadDialogTimeout,
    BadIMAddress,
    BadPhoneNumber,
    Binding,
    BindingStore,
    DialogError,
    MemoryBindingStore,
    UnknownBinding,
    _kept,
)
from smppgw.sms.address import number_key

__all__ = [
    "LETTERS", "BadDialogTimeout", "BadIMAddress", "BadPhoneNumber", "Binding", "BindingStore",
    "Delivery", "DialogError", "DialogTable", "Incoming", "MemoryBindingStore", "UnknownBinding",
    "normalize_phone", "route_incoming",
]

_log = Logger()

LETTERS = string.ascii_lowercase

# "@x:" or "@x " with x an ASCII letter; phones capitalise the first letter
# of a message, so "@A" means "@a". "@@ " is the escape. Each "@" may also be
# any other character the caller names (see _prefix_patterns).
_LETTER_PREFIX = "{at}([A-Za-z])[: ]"
_ESCAPE_PREFIX = "{at}{at} "
_NUMBER = re.compile(r"\+*([0-9]+)")


class SecondsClock(Protocol):
    """The part of ``IReactorTime`` the table uses; a reactor or ``task.Clock`` fits.

    A Protocol rather than the zope interface, so mypy checks callers without a plugin.
    """

    def seconds(self) -> float: ...


@dataclass(frozen=True)
class Incoming:
    """What the dialog table makes of one SMS from a phone.

    ``kind`` is ``"binding"`` (``address`` is set), ``"escape"`` (the text
    started with ``@@ ``), ``"no-binding"``, ``"ambiguous"`` (several bindings
    and no letter named) or ``"unknown-letter"`` (the named letter is not bound).
    """

    kind: str
    address: str | None
    body: str
    letter: str | None


@dataclass(frozen=True)
class Delivery:
    """Where an incoming SMS goes: ``recipient`` None means it is not accepted."""

    recipient: str | None
    body: str
    reason: str


def normalize_phone(phone: str) -> str:
    """Return the key a phone is stored under.

    Numbers, with or without "+", become "+digits", so a deliver_sm
    source_addr of ``74992713154`` meets the binding made for
    ``+74992713154``. An alphanumeric sender is kept as it is: it can never
    have a binding, but its messages still need routing.
    """
    stripped = phone.strip()
    number = _NUMBER.fullmatch(stripped)
    if number:
        return "+" + number.group(1)
    if not stripped or any(char.isspace() or not char.isprintable() for char in stripped):
        raise BadPhoneNumber(f"not a phone number: {phone!r}")
    return stripped


def _check_im_address(address: str) -> str:
    stripped = address.strip()
    # The space ends the address in "@a=address text", so the address must not hold one.
    if not stripped or any(char.isspace() or not char.isprintable() for char in stripped):
        raise BadIMAddress(f"not an IM address: {address!r}")
    return stripped


@functools.lru_cache(maxsize=16)
def _prefix_patterns(at_signs: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """The escape and letter prefixes, each "@" in them matching any of ``at_signs``."""
    at = "[" + re.escape("@" + at_signs) + "]"
    return re.compile(_ESCAPE_PREFIX.format(at=at)), re.compile(_LETTER_PREFIX.format(at=at))


def _split_prefix(text: str, at_signs: str = "@") -> tuple[str, str | None, str]:
    """Split ``text`` into (form, letter, body), form being "letter", "escape" or "none".

    Blanks after the prefix go too: "@a: see you" reads as "see you". Each "@" of a
    prefix may be "@" or any character of ``at_signs``.
    """
    escape, letter = _prefix_patterns(at_signs)
    match = escape.match(text)
    if match:
        return "escape", None, text[match.end() :].lstrip(" ")
    match = letter.match(text)
    if match:
        return "letter", match.group(1).lower(), text[match.end() :].lstrip(" ")
    return "none", None, text


class DialogTable:
    """The bindings of every phone, with the letters they use and their expiry."""

    def __init__(
        self, clock: SecondsClock, timeout: float, store: BindingStore | None = None
    ) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise BadDialogTimeout(
                f"dialog timeout must be a positive number of seconds: {timeout!r}"
            )
        self._clock = clock
        self._timeout = float(timeout)
        self._store: BindingStore = store if store is not None else MemoryBindingStore()
        self._by_phone: dict[str, dict[str, Binding]] = {}
        # At most one (time, phone, letter) per binding, the time no later than
        # the binding's last use: a touch does not push, so that a busy binding
        # costs one entry, not one per message.  An entry that comes up for a
        # binding used since is pushed again with the binding's real time.
        # It lets every access retire what is due without scanning all phones.
        self._due: list[tuple[float, str, str]] = []
        self._queued: set[tuple[str, str]] = set()
        for binding in self._store.load_bindings():
            self._remember(binding)

    @property
    def timeout(self) -> float:
        """Seconds a binding lives unused; settable while running (``dialog_timeout``)."""
        return self._timeout

    @timeout.setter
    def timeout(self, timeout: float) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise BadDialogTimeout(
                f"dialog timeout must be a positive number of seconds: {timeout!r}"
            )
        self._timeout = float(timeout)

    def outgoing_prefix(self, phone: str, im_sender: str) -> str:
        """Return the prefix for an SMS from ``im_sender`` to ``phone``, binding a letter if needed.

        The first message gets ``"@a=address "``, later ones ``"@a "``. When all
        26 letters are live, the least recently used one is given to the newcomer.
        """
        phone = normalize_phone(phone)
        address = _check_im_address(im_sender)
        self.expire()
        letters = self._by_phone.get(phone, {})
        for binding in letters.values():
            if binding.address == address:
                self._touch(binding)
                return f"@{binding.letter} "
        free = [letter for letter in LETTERS if letter not in letters]
        if free:
            letter = free[0]
        else:
            letter = min(letters.values(), key=lambda b: (b.last_used, b.letter)).letter
        self._remember(Binding(phone, address, letter, self._clock.seconds()), save=True)
        return f"@{letter}={address} "

    def resolve_incoming(self, phone: str, text: str, at_signs: str = "@") -> Incoming:
        """Find the binding an SMS from ``phone`` answers, by its prefix or by there being only one.

        ``at_signs`` names characters that also count as the "@" of a prefix.
        """
        phone = normalize_phone(phone)
        self.expire()
        form, letter, body = _split_prefix(text, at_signs)
        if form == "escape":
            return Incoming("escape", None, body, None)
        letters = self._by_phone.get(phone, {})
        if form == "letter":
            assert letter is not None
            binding = letters.get(letter)
            if binding is None:
                return Incoming("unknown-letter", None, body, letter)
        elif len(letters) == 1:
            (binding,) = letters.values()
        else:
            return Incoming("ambiguous" if letters else "no-binding", None, body, None)
        self._touch(binding)
        return Incoming("binding", binding.address, body, binding.letter)

    def bindings(self, phone: str) -> list[Binding]:
        """Return the live bindings of ``phone``, sorted by letter."""
        phone = normalize_phone(phone)
        self.expire()
        letters = self._by_phone.get(phone, {})
        return [letters[letter] for letter in sorted(letters)]

    @property
    def size(self) -> int:
        """How many bindings the table holds (those past the timeout go at the next use)."""
        return sum(map(len, self._by_phone.values()))
    def every_binding(self) -> list[Binding]:
        """Every live binding, by phone and letter."""
        self.expire()
        return sorted((binding for letters in self._by_phone.values()
                       for binding in letters.values()), key=lambda b: (b.phone, b.letter))

    def phones(self) -> list[str]:
        """The phones that have bindings held (some perhaps past the timeout)."""
        return list(self._by_phone)

    def refresh(self, phone: str, bindings: list[Binding]) -> None:
        """Hold ``bindings`` as ``phone``'s, as the store has them now (another gateway
        node changed them), in place of those held: nothing is written back."""
        phone = normalize_phone(phone)
        letters = {b.letter: b for b in bindings if b.phone == phone}
        if letters:
            self._by_phone[phone] = letters
        else:
            self._by_phone.pop(phone, None)
        for binding in letters.values():
            if (binding.phone, binding.letter) not in self._queued:
                self._queue(binding)

    def retire(self, phone: str, letter: str) -> Binding:
        """Forget the binding (phone, letter) now, as if it had timed out; return it.

        A reply from the phone naming the letter then finds no binding; the
        next message from its IM user to the phone binds a letter afresh.
        """
        phone = normalize_phone(phone)
        key = letter.strip().lower()
        self.expire()
        letters = self._by_phone.get(phone, {})
        binding = letters.get(key)
        if binding is None:
            raise UnknownBinding(f"{phone} has no dialog binding @{letter.strip()}")
        # Its entry in _due stays: when it comes up, the binding is gone and it is dropped.
        del letters[key]
        if not letters:
            del self._by_phone[phone]
        _kept(self._store.delete_binding(phone, key))
        return binding

    def expire(self) -> int:
        """Retire every binding unused for the timeout; return how many were retired."""
        retired = 0
        oldest_live = self._clock.seconds() - self._timeout
        while self._due and self._due[0][0] <= oldest_live:
            _, phone, letter = heapq.heappop(self._due)
            self._queued.discard((phone, letter))
            letters = self._by_phone.get(phone, {})
            binding = letters.get(letter)
            if binding is None:
                continue
            if binding.last_used > oldest_live:
                # Touched or replaced since the entry was pushed: due later.
                self._queue(binding)
                continue
            del letters[letter]
            if not letters:
                del self._by_phone[phone]
            _kept(self._store.delete_binding(phone, letter))
            retired += 1
        return retired

    def _touch(self, binding: Binding) -> None:
        now = self._clock.seconds()
        if now != binding.last_used:
            self._remember(Binding(binding.phone, binding.address, binding.letter, now), save=True)

    def _remember(self, binding: Binding, save: bool = False) -> None:
        self._by_phone.setdefault(binding.phone, {})[binding.letter] = binding
        if (binding.phone, binding.letter) not in self._queued:
            self._queue(binding)
        if save:
            _kept(self._store.save_binding(binding))

    def _queue(self, binding: Binding) -> None:
        heapq.heappush(self._due, (binding.last_used, binding.phone, binding.letter))
        self._queued.add((binding.phone, binding.letter))


def _telnum_address(destination_number: str) -> str | None:
    """``number@telnum`` for a number in its IM form (see `smppgw.sms.address`), else None."""
    number = destination_number.strip()
    return f"{number}@telnum" if number_key(number) is not None else None


def route_incoming(
    *,
    dialogs: bool,
    recipient: str,
    table: DialogTable | None,
    phone: str,
    destination_number: str,
    text: str,
    at_signs: str = "@",
) -> Delivery:
    """Apply a server record's Dialogs and Recipient settings to an SMS from ``phone``.

    - Dialogs off: to ``recipient``, or, when it is empty, to
      ``destination@telnum`` (``destination_number`` is the destination in its
      IM form, such as ``+31612345678`` or ``12345;ton=3``); the text is passed
      on untouched.
    - Dialogs on and a binding found: to the binding's address.
    - Dialogs on and ``@@ ``, or no binding found (none, several and no
      letter named, or the named letter unbound): to ``recipient``, and not
      accepted when it is empty.
    With Dialogs on the dialog prefix is removed from the body; besides "@", any
    character of ``at_signs`` counts as the "@" of a prefix (what an "@" sent in
    another alphabet reads as).
    """
    default = recipient.strip()
    if not dialogs:
        if default:
            return Delivery(default, text, "Dialogs are off: to the default recipient")
        address = _telnum_address(destination_number)
        if address is None:
            return Delivery(
                None,
                text,
                f"Dialogs are off, no default recipient is set, and the destination "
                f"{destination_number!r} is not a phone number",
            )
        return Delivery(
            address,
            text,
            "Dialogs are off and no default recipient is set: to the destination number",
        )

    if table is None:
        raise DialogError("Dialogs are on but no DialogTable was given")
    try:
        incoming = table.resolve_incoming(phone, text, at_signs)
    except BadPhoneNumber:
        # A sender that is no phone number can hold no binding.
        _, letter, body = _split_prefix(text, at_signs)
        incoming = Incoming("no-binding", None, body, letter)
        sender = f"sender {phone!r}"
    else:
        sender = normalize_phone(phone)

    if incoming.kind == "binding":
        return Delivery(
            incoming.address, incoming.body, f"dialog binding @{incoming.letter} of {sender}"
        )
    if incoming.kind == "escape":
        if default:
            return Delivery(default, incoming.body, "'@@ ' prefix: to the default recipient")
        return Delivery(
            None,
            incoming.body,
            "the message asks for the default recipient ('@@ ' prefix), but none is set",
        )
    if incoming.kind == "unknown-letter":
        why = f"{sender} has no dialog binding @{incoming.letter}"
    elif incoming.kind == "ambiguous":
        count = len(table.bindings(phone))
        why = f"{sender} has {count} dialog bindings and the message names none (@x prefix)"
    else:
        why = f"{sender} has no dialog binding"
    if default:
        return Delivery(default, incoming.body, f"{why}: to the default recipient")
    return Delivery(None, incoming.body, f"{why} and no default recipient is set")
