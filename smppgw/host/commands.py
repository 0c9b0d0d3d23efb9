"""
The AMP contract between the gateway and its hosts: the commands, their
arguments, answers and errors.

Host -> gateway: `Login`, `SendSignal`, `ServerStatus`.
Gateway -> host: `DeliverSignal`, `SignalReport` (the host answers ``{}`` or
the error ``REFUSED`` / ``TRY_LATER``).

A Python host imports these classes to speak to the gateway.  Each command's
``errors`` comes from the one table of codes in `smppgw.relay.outcomes`: a
host gets the same exception classes back that the gateway raised.
"""

from __future__ import annotations

from typing import Any, ClassVar

from twisted.protocols import amp

from smppgw.relay.outcomes import (
    HOST_ERRORS,
    OUTCOMES,
    BadRequest,
    HostTryLater,
    Refused,
    SignalError,
    Unauthorized,
    amp_errors,
)

__all__ = [
    "DeliverSignal", "HostTryLater", "Login", "Refused", "SendSignal", "ServerStatus",
    "SignalReport", "remote_error",
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
