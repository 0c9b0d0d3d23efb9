"""
The gateway's errors: one class per AMP error code, the one table of codes.

Every refusal and failure a host can see has one shape, from where it arises
to the AMP answer: a `SignalError` whose class's ``code`` is the AMP error
code and whose text is the reason.  The layers below the relay raise them
themselves (`smppgw.sms.address.BadAddress` is a ``BadAddressError``,
`smppgw.sms.alphabet.TooLong` a ``TooLongError``, the router's refusals are
``UnknownServerError`` and ``ServerDisabledError``); the SMSC's refusal of a
part (`smppgw.smpp.failures.CommandStatusError`) becomes ``SmscRejected``
naming the status.  A finished request's outcome is stored as the dict
`failed` makes of its error and read back into it by `error_of`, so a retried
request_id ends with the same class and text.  The AMP commands
(`smppgw.host.commands`) declare their ``errors`` from `OUTCOMES` and
`OPERATOR_ERRORS`; the operator's pages and command line show the same
code and text.  `HostError` and its subclasses are the answers a host may
give a DeliverSignal or SignalReport (`HOST_ERRORS`).
"""

from __future__ import annotations

from typing import Any


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


def failed(error: SignalError) -> dict[str, Any]:
    """The outcome a request that ends with ``error`` is stored with (see `smppgw.relay.jobs`)."""
    return {"ok": False, "code": error.code, "reason": error.reason}


def error_of(outcome: dict[str, Any]) -> SignalError:
    """The error a failed ``outcome`` (a `failed` one) answers the host with."""
    return BY_CODE.get(outcome.get("code", ""), SignalError)(outcome.get("reason", ""))


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
