"""
What a request to the SMSC ends with when it is not answered ESME_ROK: one exception
per way, all `RequestFailed`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from smppgw.smpp.constants import status_text

if TYPE_CHECKING:
    from smppgw.smpp.wire import PDU


class RequestFailed(Exception):
    """A request that did not get a successful response."""


class CommandStatusError(RequestFailed):
    """The peer answered with a non-zero command_status."""

    def __init__(self, response: PDU) -> None:
        self.response = response
        self.status = response.command_status
        super().__init__(f"{response.command} {status_text(self.status)}")


class BindFailed(CommandStatusError):
    """The SMSC refused the bind (ESME_RBINDFAIL, ESME_RINVPASWD, ...)."""


class GenericNack(RequestFailed):
    """The peer answered the request with generic_nack."""

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(f"generic_nack {status_text(status)}")


class ResponseTimeout(RequestFailed):
    """No response arrived within response_timeout."""


class ConnectionLost(RequestFailed):
    """The connection closed while the request was outstanding (or before it was sent)."""


class NotBound(RequestFailed):
    """The session is not bound in a mode that allows this request."""


class MalformedResponse(RequestFailed):
    """The peer's response did not parse."""
