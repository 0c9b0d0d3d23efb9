"""
The errors of the AMP contract, one class per error code: the one table of codes.

`SignalError` and its subclasses are what a host's SendSignal, ServerStatus or
Login can end with: the outbound queue raises them, and each class's ``code``
is the AMP error code the host sees (`smppgw.host.commands` builds the
commands' ``errors`` from `OUTCOMES`); the exception's text is the
human-readable reason.  `HostError` and its subclasses are the answers a host
may give a DeliverSignal or SignalReport (`HOST_ERRORS`).
"""

from __future__ import annotations


class SignalError(Exception):
    """An outcome of a request that is not success."""

    code = "ERROR"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnsupportedMethod(SignalError):
    code = "UNSUPPORTED_METHOD"


class BadRequest(SignalError):
    """An argument outside the contract (a request_id of 0 or over 128 characters)."""

    code = "BAD_REQUEST"


class BadAddressError(SignalError):
    code = "BAD_ADDRESS"


class UnknownServerError(SignalError):
    code = "UNKNOWN_SERVER"


class ServerDisabledError(SignalError):
    code = "SERVER_DISABLED"


class TooLongError(SignalError):
    code = "TOO_LONG"


class NotRelayed(SignalError):
    code = "NOT_RELAYED"


class SmscRejected(SignalError):
    code = "SMSC_REJECTED"


class Unauthorized(SignalError):
    code = "UNAUTHORIZED"


class TryLater(SignalError):
    """A temporary failure of the gateway itself (its store); the host may retry the same request_id."""

    code = "TRY_LATER"


class NotFound(SignalError):
    """An operator's command names a request, server or dialog binding that does not exist."""

    code = "NOT_FOUND"


class Unavailable(SignalError):
    """An operator's command this gateway cannot carry out now (no store, no reload, a failed write)."""

    code = "UNAVAILABLE"


#: Every error a SendSignal can end with, each with its own code.
OUTCOMES: tuple[type[SignalError], ...] = (
    UnsupportedMethod, BadRequest, BadAddressError, UnknownServerError, ServerDisabledError,
    TooLongError, NotRelayed, SmscRejected, TryLater, Unauthorized,
)

#: The errors of the operator's commands (ListQueue, LookupMessage, Reload, ...).
OPERATOR_ERRORS: tuple[type[SignalError], ...] = (NotFound, Unavailable, BadRequest, Unauthorized)

#: Final outcomes recorded in the store, by code, for answering retried request_ids.
BY_CODE: dict[str, type[SignalError]] = {cls.code: cls for cls in OUTCOMES}


class HostError(Exception):
    """A host's error answer to a DeliverSignal / SignalReport."""

    code = "ERROR"


class Refused(HostError):
    """The host refused a DeliverSignal / SignalReport for good."""

    code = "REFUSED"


class HostTryLater(HostError):
    """The host cannot take a DeliverSignal / SignalReport now."""

    code = "TRY_LATER"


#: The errors a host may answer a DeliverSignal / SignalReport with.
HOST_ERRORS: tuple[type[HostError], ...] = (Refused, HostTryLater)


def amp_errors(*classes: type[SignalError] | type[HostError]) -> dict[type[Exception], bytes]:
    """A Command's ``errors``: each class by the AMP code it declares."""
    return {cls: cls.code.encode("ascii") for cls in classes}
