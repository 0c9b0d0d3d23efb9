"""
Verified TLS for a link: a client connection creator that fails closed.

Twisted's own verifier (``optionsForClientTLS``, Twisted 26.10) checks the
hostname with service_identity but catches only ``VerificationError``; since
service_identity 24.1 a certificate without subjectAltName raises
``CertificateError`` instead, which Twisted logs and then lets the handshake
go on.  `VerifyingClientTLS` keeps Twisted's context (trust root, client
certificate, SNI, protocol versions) and replaces only the verify callback
with one that refuses on *any* error, whatever the versions installed.

A refusal aborts the handshake before a byte of SMPP leaves, and reaches the
link as the reason its connection was lost: a `CertificateRefused` that says
which check failed (untrusted issuer, expired, name mismatch, no
subjectAltName) and for which host.
"""

from __future__ import annotations

import weakref
from typing import Any

from OpenSSL import SSL
from twisted.internet import ssl
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.python.failure import Failure
from zope.interface import implementer

#: OpenSSL's X509_V_ERR_* codes, by what an operator needs to hear.
_CHAIN_ERRORS = {
    2: "untrusted issuer",  # unable to get issuer certificate
    7: "bad signature",
    9: "not yet valid",
    10: "expired",
    18: "untrusted issuer (self-signed)",
    19: "untrusted issuer (self-signed root)",
    20: "untrusted issuer",  # unable to get local issuer certificate
    21: "untrusted issuer",  # unable to verify the first certificate
    23: "revoked",
    24: "issuer is not a CA",
    26: "not for TLS servers",  # invalid purpose
}


class CertificateRefused(Exception):
    """The SMSC's certificate failed a check: the connection was aborted during the handshake."""


def _names(certificate: Any) -> str:
    """The subject CN and DNS names of a cryptography certificate, for a log line."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cns = [str(a.value) for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        dns: list[str] = []
    else:
        dns = [str(n) for n in san.value.get_values_for_type(x509.DNSName)]
    parts = [f"CN={cn}" for cn in cns] + [f"DNS:{name}" for name in dns]
    return ", ".join(parts) or "no name"


def _has_subject_alt_name(certificate: Any) -> bool:
    from cryptography import x509

    try:
        certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return False
    return True


def check_name(certificate: Any, hostname: str) -> str | None:
    """Why `certificate` (a cryptography certificate) is not valid for `hostname`, or None if it is.

    Any error of service_identity counts as a refusal, not only
    ``VerificationError``.
    """
    from service_identity import CertificateError, VerificationError
    from service_identity.cryptography import (
        verify_certificate_hostname,
        verify_certificate_ip_address,
    )

    # Checked here, not left to service_identity: its older versions fall
    # back to the CN when there is no subjectAltName.
    if not _has_subject_alt_name(certificate):
        return f"no subjectAltName (the certificate names {_names(certificate)})"
    try:
        if isIPAddress(hostname) or isIPv6Address(hostname):
            verify_certificate_ip_address(certificate, hostname)
        else:
            verify_certificate_hostname(certificate, hostname)
    except VerificationError:
        return f"name mismatch (the certificate names {_names(certificate)})"
    except CertificateError as error:
        return f"invalid subjectAltName ({error})"
    except Exception as error:  # whatever a later version may raise: refused all the same
        return f"cannot check the name ({error!r})"
    return None


@implementer(IOpenSSLClientConnectionCreator)
class VerifyingClientTLS:
    """Twisted's client TLS for `hostname`, with a verify callback that refuses on any failed check."""

    def __init__(self, hostname: str, trust_root: Any = None, client_certificate: Any = None) -> None:
        self.hostname = hostname
        self._options = ssl.optionsForClientTLS(hostname, trustRoot=trust_root,
                                                clientCertificate=client_certificate)

    def clientConnectionForTLS(self, tls_protocol: Any) -> SSL.Connection:
        connection: SSL.Connection = self._options.clientConnectionForTLS(tls_protocol)
        connection.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
                              self._verifier(weakref.ref(tls_protocol)))
        return connection

    def _verifier(self, protocol: weakref.ref[Any]) -> Any:
        refused: list[str] = []

        def verify(connection: SSL.Connection, cert: Any, error: int, depth: int, ok: int) -> bool:
            # An exception raised here would be lost inside OpenSSL: every
            # path returns, and anything unexpected is a refusal.
            try:
                certificate = cert.to_cryptography()
                if not ok:
                    what = _CHAIN_ERRORS.get(error, f"verify error {error}")
                    reason = f"{what} (the certificate names {_names(certificate)})"
                elif depth == 0:
                    reason = check_name(certificate, self.hostname) or ""
                else:
                    reason = ""
            except Exception as unexpected:
                reason = f"cannot check the certificate: {unexpected!r}"
            if not reason:
                return True
            if not refused:
                refused.append(reason)
                tls = protocol()
                if tls is not None:
                    tls.failVerification(Failure(CertificateRefused(
                        f"TLS certificate of {self.hostname} refused: {reason}")))
            return False

        return verify
