"""
An SMSC built on smpp.twisted3's server (``smpp.twisted.server``), for tests/test_interop.py.

smpp.twisted3 is the SMPP server library under Jasmin; like the SMSCs built on
it (and like smpp.pdu, which it reads and writes PDUs with), this one treats
data_coding 0 as ASCII: the MO text it sends goes as ASCII bytes, ``@`` as 0x40.

The library gives a protocol and a factory; this module adds what an SMSC around
them needs: a cred portal with one system_id and password, a handler that
answers each submit_sm with a fresh message_id and keeps the PDU, and
`TwistedSMSC.deliver`, which sends a deliver_sm down the bound session.
It runs in the test's own reactor, listening on 127.0.0.1.

smpp.twisted3 pins an old Twisted in its metadata, so pip cannot resolve it beside
this project's Twisted; ``.ci/interop-setup`` installs it with ``--no-deps``, from
tests/interop/requirements.txt. Its code runs unchanged on the Twisted here.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

from smpp.pdu import operations, pdu_types
from smpp.pdu.sm_encoding import SMStringEncoder
from smpp.twisted.config import SMPPServerConfig
from smpp.twisted.protocol import DataHandlerResponse, SMPPServerProtocol
from smpp.twisted.server import IAuthenticatedSMPP, SMPPServerFactory
from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import IRealm, Portal
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.endpoints import serverFromString
from zope.interface import implementer

# The library logs each connection at WARNING through the standard logging
# module; keep that out of the test output.
_library_log = logging.getLogger("smpp.twisted")
_library_log.addHandler(logging.NullHandler())
_library_log.propagate = False


class _Session(SMPPServerProtocol):
    """The library's server protocol, telling the factory that it exists."""

    def connectionMade(self) -> None:
        super().connectionMade()
        self.factory.sessions.append(self)


@implementer(IRealm)
class _Realm:
    """Every authenticated system_id gets the same (empty) avatar."""

    def requestAvatar(self, avatar_id: Any, mind: Any, *interfaces: Any) -> Any:
        return IAuthenticatedSMPP, avatar_id, lambda: None


class TwistedSMSC:
    """An SMSC on smpp.twisted3: accepts one account, answers submit_sm, sends ASCII MO."""

    def __init__(self, system_id: str = "interop", password: str = "pw") -> None:
        checker = InMemoryUsernamePasswordDatabaseDontUse()
        # The server hands the checker str credentials, so the account is kept as str too.
        checker.addUser(system_id, password)  # type: ignore[arg-type]
        portal = Portal(_Realm(), [checker])
        config = SMPPServerConfig(msgHandler=self._request,
                                  systems={system_id: {"max_bindings": 1}})
        self.system_id = system_id
        self.factory = SMPPServerFactory(config, auth_portal=portal)
        self.factory.protocol = _Session
        #: Every connection accepted: its ``getDisconnectedDeferred()`` fires when it ends.
        self.factory.sessions = []
        #: Every submit_sm received, as smpp.pdu decoded it.
        self.submits: list[Any] = []
        self._ids = itertools.count(1)
        self._port: Any = None

    def listen(self, reactor: Any) -> Deferred[int]:
        """Listen on 127.0.0.1 at a free port; fires with the port number."""
        d = serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(self.factory)

        def listening(port: Any) -> int:
            self._port = port
            return int(port.getHost().port)

        return d.addCallback(listening)

    def stop(self) -> Deferred[Any]:
        """Stop listening, and fire once every session has ended (the ESME unbinds or is gone).

        The library's timers run in the global reactor until their session ends.
        """
        waits = [session.getDisconnectedDeferred() for session in self.factory.sessions]
        if self._port is not None:
            waits.append(self._port.stopListening())
        return DeferredList(waits, fireOnOneErrback=True, consumeErrors=True)

    @staticmethod
    def text(pdu: Any) -> str:
        """A submit_sm's text as smpp.pdu reads it (data_coding 0 as ASCII, errors replaced)."""
        return str(SMStringEncoder().decodeSM(pdu).unicode)

    def _request(self, system_id: str, smpp: Any, pdu: Any) -> Any:
        """The library's data handler: one call per submit_sm / data_sm from a bound ESME."""
        if pdu.id == pdu_types.CommandId.submit_sm:
            self.submits.append(pdu)
            return DataHandlerResponse(pdu_types.CommandStatus.ESME_ROK,
                                       message_id=f"tw-{next(self._ids)}")
        return pdu_types.CommandStatus.ESME_RINVCMDID

    def session(self) -> Any:
        """The bound session that MO goes down (transceiver or receiver)."""
        binds = self.factory.getBoundConnections(self.system_id)
        connection = binds.getNextBindingForDelivery() if binds else None
        if connection is None:
            raise RuntimeError(f"no session of {self.system_id!r} is bound to receive")
        return connection

    def deliver(self, source: str, destination: str, text: str) -> Deferred[Any]:
        """Send ``text`` from ``source`` to ``destination`` as the SMSC does: ASCII in data_coding 0.

        Fires with the deliver_sm_resp, as smpp.pdu decoded it.
        """
        pdu = operations.DeliverSM(
            source_addr_ton=pdu_types.AddrTon.INTERNATIONAL,
            source_addr_npi=pdu_types.AddrNpi.ISDN,
            source_addr=source,
            dest_addr_ton=pdu_types.AddrTon.INTERNATIONAL,
            dest_addr_npi=pdu_types.AddrNpi.ISDN,
            destination_addr=destination,
            esm_class=pdu_types.EsmClass(pdu_types.EsmClassMode.DEFAULT,
                                         pdu_types.EsmClassType.DEFAULT),
            protocol_id=0,
            priority_flag=pdu_types.PriorityFlag.LEVEL_0,
            registered_delivery=pdu_types.RegisteredDelivery(
                pdu_types.RegisteredDeliveryReceipt.NO_SMSC_DELIVERY_RECEIPT_REQUESTED),
            replace_if_present_flag=pdu_types.ReplaceIfPresentFlag.DO_NOT_REPLACE,
            data_coding=pdu_types.DataCoding(),  # 0: SMSC default alphabet
            short_message=text.encode("ascii"),
        )
        d: Deferred[Any] = self.session().sendDataRequest(pdu)
        return d.addCallback(lambda result: result.response)
