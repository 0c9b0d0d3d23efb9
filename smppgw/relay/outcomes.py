"""
The errors a host sees, one class per AMP error code of the contract.

The outbound queue raises these; `amp` maps each class to its code, and the
exception's text is the human-readable reason.
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


#: Final outcomes recorded in the store, by code, for answering retried request_ids.
BY_CODE: dict[str, type[SignalError]] = {
    cls.code: cls
    for cls in (
        UnsupportedMethod, BadRequest, BadAddressError, UnknownServerError, ServerDisabledError,
        TooLongError, NotRelayed, SmscRejected, Unauthorized, TryLater,
    )
}
