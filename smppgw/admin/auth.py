"""
Who may use the admin: the password, sessions, CSRF tokens and the login throttle.

The password is kept only as an argon2 hash (C{[admin] password_hash}).  Checking one
costs tens of milliseconds of CPU by design, so it runs on a thread, never on the
reactor's (the caller passes how: L{deferToThreadPool} in the gateway, a synchronous
call in tests).

A session is a random token in a cookie; it ends after L{Sessions.idle} seconds
without a request, and its token is replaced at login so that a token planted
before it is worth nothing after.  Each session has its own CSRF token, which every
form carries and every POST must give back.

Failed logins are counted per client address: after L{LoginThrottle.failures} within
L{LoginThrottle.window} seconds, that address may not try again until the oldest of
them is older than the window.  A refused attempt is not checked at all, so guessing
costs the gateway nothing either.
"""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

__all__ = ["LoginThrottle", "PasswordCheck", "Session", "Sessions", "hash_password"]

#: How a blocking call is run off the reactor thread: f, *args -> Deferred of its result.
Runner = Callable[..., "Deferred[Any]"]


def hash_password(password: str, hasher: PasswordHasher | None = None) -> str:
    """The argon2id hash of C{password}, as C{[admin] password_hash} keeps it."""
    return (hasher or PasswordHasher()).hash(password)


def _matches(password_hash: str, password: str) -> bool:
    try:
        return bool(PasswordHasher().verify(password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


class PasswordCheck:
    """Checks a password against an argon2 hash with C{run} (off the reactor thread)."""

    def __init__(self, run: Runner) -> None:
        self._run = run

    def verify(self, password_hash: str, password: str) -> Deferred[bool]:
        """Fires with whether C{password} is the one C{password_hash} was made from."""
        return self._run(_matches, password_hash, password)


@dataclass
class Session:
    """One browser's session: its cookie token, its CSRF token and whether it logged in."""

    token: str
    csrf: str
    last_seen: float
    authenticated: bool = False

    def csrf_matches(self, given: str) -> bool:
        """Whether a form's token is this session's (compared in constant time)."""
        return hmac.compare_digest(given.encode(), self.csrf.encode())


def _token() -> str:
    return secrets.token_urlsafe(32)


@dataclass
class Sessions:
    """The live sessions, by token; at most C{limit}, the longest idle dropped first."""

    clock: IReactorTime
    idle: float = 1800.0
    limit: int = 1000
    _by_token: OrderedDict[str, Session] = field(default_factory=OrderedDict)

    def new(self) -> Session:
        """A session not logged in yet (for the login form's CSRF token)."""
        session = Session(_token(), _token(), self.clock.seconds())
        self._by_token[session.token] = session
        while len(self._by_token) > self.limit:
            self._by_token.popitem(last=False)
        return session

    def get(self, token: str | None) -> Session | None:
        """The live session of C{token}, its idle time restarted; None if unknown or expired."""
        if not token:
            return None
        session = self._by_token.get(token)
        if session is None:
            return None
        now = self.clock.seconds()
        if now - session.last_seen >= self.idle:
            del self._by_token[token]
            return None
        session.last_seen = now
        self._by_token.move_to_end(token)
        return session

    def log_in(self, session: Session) -> Session:
        """The logged-in session that replaces C{session}, with new tokens."""
        self.end(session)
        fresh = self.new()
        fresh.authenticated = True
        return fresh

    def end(self, session: Session) -> None:
        self._by_token.pop(session.token, None)

    def __len__(self) -> int:
        return len(self._by_token)


@dataclass
class LoginThrottle:
    """Failed logins per client address: C{failures} within C{window} seconds at most."""

    clock: IReactorTime
    failures: int = 5
    window: float = 300.0
    _failed: dict[str, deque[float]] = field(default_factory=dict)

    def wait(self, address: str) -> float:
        """Seconds before C{address} may try again; 0 when it may now."""
        now = self.clock.seconds()
        times = self._failed.get(address)
        if times is None:
            return 0.0
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times:
            del self._failed[address]
            return 0.0
        if len(times) < self.failures:
            return 0.0
        return self.window - (now - times[0])

    def failed(self, address: str) -> None:
        self._failed.setdefault(address, deque()).append(self.clock.seconds())

    def succeeded(self, address: str) -> None:
        self._failed.pop(address, None)
