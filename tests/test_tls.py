"""Tests for the certificate name check that a TLS link applies on top of the chain check."""

from __future__ import annotations

from typing import Any

import service_identity.cryptography
from cryptography import x509
from twisted.trial.unittest import SynchronousTestCase

from smppgw.smpp.tls import check_name
from smppgw.testing.process import make_authority, make_certificate


class CheckNameTests(SynchronousTestCase):
    def certificate(self, hostname: str, **options: Any) -> Any:
        folder = self.mktemp()
        path, _ = make_certificate(folder, hostname, authority=make_authority(folder), **options)
        with open(path, "rb") as f:
            return x509.load_pem_x509_certificate(f.read())

    def test_matching_name(self) -> None:
        """A subjectAltName naming the host passes."""
        self.assertIsNone(check_name(self.certificate("smsc.example"), "smsc.example"))

    def test_invalid_subject_alt_name(self) -> None:
        """A subjectAltName that service_identity cannot read (an IP address as a DNS name) refuses the certificate."""
        self.assertEqual(check_name(self.certificate("127.0.0.1"), "127.0.0.1"),
                         "invalid subjectAltName (Invalid DNS pattern b'127.0.0.1'.)")

    def test_any_error_of_service_identity_refuses(self) -> None:
        """An error service_identity raises that is not a VerificationError still refuses the certificate."""

        def broken(certificate: Any, hostname: str) -> None:
            raise RuntimeError("a new kind of error")

        self.patch(service_identity.cryptography, "verify_certificate_hostname", broken)
        self.assertEqual(check_name(self.certificate("smsc.example"), "smsc.example"),
                         "cannot check the name (RuntimeError('a new kind of error'))")
