"""Every link the outbound queue may be given provides ILink, the seam it sends through."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from smppgw.relay.linkqueue import NoLink
from smppgw.smpp.codec import PDU
from smppgw.smpp.interfaces import ILink
from smppgw.smpp.link import Link
from smppgw.smpp.session import RequestFailed

from .test_link import FakeEndpoint, server_config
from .test_queue import BufferedLink, FakeLink


class LinkSeamTests(SynchronousTestCase):
    def test_link(self) -> None:
        """The real link, before it is started, provides every attribute and method of ILink."""
        self.assertTrue(verifyObject(ILink, Link(server_config(), FakeEndpoint(), Clock())))

    def test_no_link(self) -> None:
        """The stand-in of an off server provides ILink and refuses every submit."""
        link = NoLink(server_config())
        self.assertTrue(verifyObject(ILink, link))
        self.assertFalse(link.ready)
        answer = link.submit(PDU("submit_sm"), Deferred())
        failure = self.failureResultOf(answer, RequestFailed)
        self.assertEqual(failure.getErrorMessage(), "server 'p1' is off")

    def test_fakes(self) -> None:
        """The tests' fake links stand in for the real one only as far as ILink goes."""
        for fake in (FakeLink(server_config()), BufferedLink(server_config())):
            self.assertTrue(verifyObject(ILink, fake))
