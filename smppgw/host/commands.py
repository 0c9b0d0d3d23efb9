"""
The AMP contract between the gateway and its hosts: the commands, their
arguments, answers and errors.

Host -> gateway: `Login`, `SendSignal`, `ServerStatus`.
Gateway -> host: `DeliverSignal`, `SignalReport` (the host answers ``{}`` or
the error ``REFUSED`` / ``TRY_LATER``).
Operator -> gateway (the ``smppgw`` command line): `ListQueue`, `RejectMessage`,
`LookupMessage`, `ListDialogs`, `RetireDialog`, `Reload`, `Backup`; they fail
with ``NOT_FOUND``, ``UNAVAILABLE`` or ``BAD_REQUEST`` (`OPERATOR_ERRORS`).
A list too long for one AMP value (64 KiB) is cut short: each answer says how
many there are in all.  Times are seconds since the epoch.

A Python host imports these classes to speak to the gateway.  Each command's
``errors`` comes from the one table of codes in `smppgw.errors`: a
host gets the same exception classes back that the gateway raised.
"""

from __future__ import annotations

from typing import Any, ClassVar

from twisted.protocols import amp

from smppgw.errors import (
    HOST_ERRORS,
    OPERATOR_ERRORS,
    OUTCOMES,
    BadRequest,
    HostTryLater,
    Refused,
    SignalError,
    Unauthorized,
    amp_errors,
)

__all__ = [
    "Backup", "DeliverSignal", "HostTryLater", "ListDialogs", "ListQueue", "Login",
    "LookupMessage", "Refused", "RejectMessage", "Reload", "RetireDialog", "SendSignal",
    "ServerStatus", "SignalReport", "remote_error",
]


def remote_error(error: type[SignalError], description: str) -> amp.RemoteAmpError:
    """The AMP error answer of ``error``'s code, for a refusal made outside a responder."""
    return amp.RemoteAmpError(error.code.encode("ascii"), description)


class _Command(amp.Command):
    """A command whose bad arguments are the sender's error (BAD_REQUEST), not the receiver's bug."""

    @classmethod
    def parseArguments(cls, box: amp.AmpBox, protocol: Any) -> dict[str, Any]:
        name = cls.commandName.decode("ascii")
        for key, argument in cls.arguments:
            if key not in box:
                if not argument.optional:
                    raise remote_error(BadRequest, f"{name}: missing argument {key.decode()}")
            elif isinstance(argument, amp.Unicode):
                try:
                    box[key].decode("utf-8")
                except UnicodeDecodeError as error:
                    raise remote_error(
                        BadRequest, f"{name}: argument {key.decode()} is not UTF-8 ({error})"
                    ) from None
        try:
            return super().parseArguments(box, protocol)
        except Exception as error:
            raise remote_error(BadRequest, f"{name}: bad arguments: {error}") from error


class Login(_Command):
    arguments = [(b"secret", amp.Unicode())]
    response: ClassVar[list[tuple[bytes, amp.Argument]]] = []
    errors = amp_errors(Unauthorized)


class SendSignal(_Command):
    arguments = [
        (b"request_id", amp.Unicode()),
        (b"method", amp.Unicode()),
        (b"sender", amp.Unicode()),
        (b"recipient", amp.Unicode()),
        (b"body", amp.Unicode()),
        (b"gateway", amp.Unicode(optional=True)),
    ]
    response = [
        (b"server", amp.Unicode()),
        (b"parts", amp.Integer()),
        (b"message_ids", amp.ListOf(amp.Unicode())),
    ]
    errors = amp_errors(*OUTCOMES)


class ServerStatus(_Command):
    arguments: ClassVar[list[tuple[bytes, amp.Argument]]] = []
    response = [
        (b"servers", amp.AmpList([
            (b"name", amp.Unicode()),
            (b"mode", amp.Unicode()),
            (b"address", amp.Unicode()),
            (b"state", amp.Unicode()),
            (b"queued", amp.Integer()),
            (b"sent", amp.Integer()),
            (b"received", amp.Integer()),
            (b"last_error", amp.Unicode()),
            # The rate (submits/s) the link learned from the SMSC's throttling;
            # absent until the SMSC throttled.  Optional: hosts built before it
            # read the other fields as ever.
            (b"rate", amp.Float(optional=True)),
        ])),
    ]
    errors = amp_errors(Unauthorized)


class DeliverSignal(_Command):
    arguments = [
        (b"method", amp.Unicode()),
        (b"sender", amp.Unicode()),
        (b"recipient", amp.Unicode()),
        (b"body", amp.Unicode()),
        (b"server", amp.Unicode()),
    ]
    response: ClassVar[list[tuple[bytes, amp.Argument]]] = []
    errors = amp_errors(*HOST_ERRORS)


class SignalReport(_Command):
    """A delivery report of one part: ``part`` (from 1) of ``parts``.

    ``part`` and ``parts`` are optional so that a host whose SignalReport
    lacks them still takes the command (AMP ignores keys it does not know);
    the gateway always sends them, except for a report stored by a version
    that did not (a host then gets None for both).
    """

    arguments = [
        (b"request_id", amp.Unicode()),
        (b"message_id", amp.Unicode()),
        (b"state", amp.Unicode()),
        (b"error", amp.Unicode()),
        (b"server", amp.Unicode()),
        (b"part", amp.Integer(optional=True)),
        (b"parts", amp.Integer(optional=True)),
    ]
    response: ClassVar[list[tuple[bytes, amp.Argument]]] = []
    errors = amp_errors(*HOST_ERRORS)


# -- the operator's commands ------------------------------------------------------------

_NO_ARGUMENTS: list[tuple[bytes, amp.Argument]] = []


class ListQueue(_Command):
    """What waits for each sending server (or ``server``), oldest first, ``limit`` each."""

    arguments = [
        (b"server", amp.Unicode(optional=True)),
        (b"limit", amp.Integer(optional=True)),
    ]
    response = [
        (b"servers", amp.AmpList([
            (b"server", amp.Unicode()),
            (b"total", amp.Integer()),
        ])),
        (b"waiting", amp.AmpList([
            (b"request_id", amp.Unicode()),
            (b"server", amp.Unicode()),
            (b"created", amp.Float()),
            (b"age", amp.Float()),
            (b"parts", amp.Integer()),
            (b"sent", amp.Integer()),
            (b"in_flight", amp.Integer()),
            (b"host", amp.Unicode()),
        ])),
    ]
    errors = amp_errors(*OPERATOR_ERRORS)


class RejectMessage(_Command):
    """End one queued message with NOT_RELAYED; the host that waits for it hears so."""

    arguments = [(b"request_id", amp.Unicode())]
    response = [
        (b"server", amp.Unicode()),
        (b"age", amp.Float()),
        (b"parts", amp.Integer()),
        (b"sent", amp.Integer()),
    ]
    errors = amp_errors(*OPERATOR_ERRORS)


class LookupMessage(_Command):
    """The request ``query`` names, or the newest to the phone number it is; part by part."""

    arguments = [(b"query", amp.Unicode())]
    response = [
        (b"total", amp.Integer()),
        (b"messages", amp.AmpList([
            (b"request_id", amp.Unicode()),
            (b"server", amp.Unicode()),
            (b"destination", amp.Unicode()),
            (b"sender", amp.Unicode()),
            (b"created", amp.Float()),
            (b"state", amp.Unicode()),
            (b"outcome", amp.Unicode()),
        ])),
        (b"parts", amp.AmpList([
            (b"request_id", amp.Unicode()),
            (b"number", amp.Integer()),
            # "" for a part the SMSC has not accepted.
            (b"message_id", amp.Unicode()),
            (b"submit", amp.Unicode()),
            (b"receipt", amp.Unicode()),
            (b"receipt_due", amp.Float(optional=True)),
        ])),
    ]
    errors = amp_errors(*OPERATOR_ERRORS)


class ListDialogs(_Command):
    """Every live dialog binding."""

    arguments = _NO_ARGUMENTS
    response = [
        (b"total", amp.Integer()),
        (b"bindings", amp.AmpList([
            (b"phone", amp.Unicode()),
            (b"letter", amp.Unicode()),
            (b"address", amp.Unicode()),
            (b"last_used", amp.Float()),
            (b"idle", amp.Float()),
        ])),
    ]
    errors = amp_errors(*OPERATOR_ERRORS)


class RetireDialog(_Command):
    """Forget one dialog binding now."""

    arguments = [(b"phone", amp.Unicode()), (b"letter", amp.Unicode())]
    response = [(b"phone", amp.Unicode()), (b"letter", amp.Unicode()),
                (b"address", amp.Unicode())]
    errors = amp_errors(*OPERATOR_ERRORS)


class Reload(_Command):
    """Read the configuration file again and apply what changed; one line per change."""

    arguments = _NO_ARGUMENTS
    response = [(b"changes", amp.ListOf(amp.Unicode()))]
    errors = amp_errors(*OPERATOR_ERRORS)


class Backup(_Command):
    """Copy the store, while the gateway runs, to ``path`` (absolute, on the gateway's host)."""

    arguments = [(b"path", amp.Unicode()), (b"force", amp.Boolean(optional=True))]
    response = [(b"path", amp.Unicode()), (b"size", amp.Integer()),
                (b"schema_version", amp.Integer())]
    errors = amp_errors(*OPERATOR_ERRORS)
