"""
Helpers for testing a gateway from the outside, shipped so that hosts can use them too.

`GatewayProcess` runs the gateway under twistd in a child process and tells
when its AMP endpoint listens and when it has ended; with `SMSCSimulator`
(smppgw.testing.simulator) it is enough to test a host against a real gateway,
including what a SIGKILL does.  `make_certificate` makes a certificate for a
simulator that listens over TLS: self-signed, or signed by a test CA that
`make_authority` makes (without subjectAltName or expired, to test refusals).
`FullDisk` makes a store's commits fail.
"""

from __future__ import annotations

import datetime
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import ProcessProtocol

#: The log line a gateway writes once its AMP endpoint listens.
READY_LINE = b"AMP endpoint listening"


class GatewayProcess(ProcessProtocol):
    """A gateway under twistd in a child process.

    ``ready`` fires when its AMP endpoint listens (or fails with the end of its
    output if it exits first); ``ended`` fires when the process has exited.
    """

    def __init__(self) -> None:
        self.ready: Deferred[None] = Deferred()
        self.ended: Deferred[None] = Deferred()
        self.output = b""

    @classmethod
    def spawn(cls, reactor: Any, config: str, cwd: str | None = None) -> GatewayProcess:
        """Start ``twistd smppgw --config config`` with this interpreter."""
        process = cls()
        args = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                "--nodaemon", "--pidfile=", "smppgw", "--config", config]
        reactor.spawnProcess(process, sys.executable, args, env=os.environ.copy(),
                             path=cwd or os.getcwd())
        return process

    @property
    def pid(self) -> int:
        transport: Any = self.transport
        return int(transport.pid)

    def outReceived(self, data: bytes) -> None:
        self.output += data
        if READY_LINE in self.output and not self.ready.called:
            self.ready.callback(None)

    errReceived = outReceived

    def processEnded(self, reason: Any) -> None:
        if not self.ready.called:
            self.ready.errback(RuntimeError(self.output.decode(errors="replace")[-3000:]))
        self.ended.callback(None)

    @inlineCallbacks
    def stop(self, sig: int = signal.SIGTERM) -> Any:
        """Send `sig` (unless the process has ended) and wait for the end."""
        if not self.ended.called:
            transport: Any = self.transport
            transport.signalProcess(sig)
            yield self.ended


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def gateway_config(state: str, smsc_port: int, *, module: dict[str, Any] | None = None,
                   **server: Any) -> str:
    """The text of a configuration with one server on the SMSC at 127.0.0.1:`smsc_port`.

    The AMP socket and the store live in the folder `state`; `module` sets
    ``[module]`` keys (log_level "none" unless given); keyword arguments set or
    override the server's keys (name "", system_id "gw", password "pw").
    """
    module_keys = {"log_level": "none", **(module or {})}
    server_keys = {"name": "", "address": f"127.0.0.1:{smsc_port}", "system_id": "gw",
                   "password": "pw", **server}
    lines = ["[module]", *(f"{k} = {_toml(v)}" for k, v in module_keys.items()),
             "[amp]", f'listen = "unix:{state}/amp.sock:mode=600"',
             "[store]", f'path = "{state}/smppgw.sqlite"',
             # No web admin: tests that run several gateways would share its port.
             "[admin]", 'listen = ""',
             "[[server]]", *(f"{k} = {_toml(v)}" for k, v in server_keys.items())]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Authority:
    """A certificate authority for tests: `path` is its certificate (what a link's ``ca_file`` trusts)."""

    path: str
    certificate: Any
    key: Any


def make_authority(directory: str, name: str = "smppgw test CA") -> Authority:
    """A self-signed CA certificate valid for a day, written to ``directory/ca.pem``."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    key, certificate = _sign(subject, None, san=None, ca=True, expired=False)
    path = os.path.join(directory, "ca.pem")
    _write(path, _pem(certificate))
    return Authority(path, certificate, key)


def make_certificate(directory: str, hostname: str = "localhost", *,
                     authority: Authority | None = None, subject_alt_name: bool = True,
                     expired: bool = False) -> tuple[str, str]:
    """A certificate with CN=`hostname`, valid for a day, written to `directory`.

    Self-signed unless `authority` signs it; it names `hostname` in a
    subjectAltName too unless `subject_alt_name` is false; with `expired` its
    validity ended yesterday.  Returns the paths of the certificate (PEM: what
    a link's ``ca_file`` trusts when it is self-signed) and of the key with the
    certificate (PEM: what a TLS endpoint such as the simulator's
    ``ssl:PORT:privateKey=PATH`` serves).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID

    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    key, certificate = _sign(subject, authority, san=hostname if subject_alt_name else None,
                             ca=authority is None, expired=expired)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    cert_path = os.path.join(directory, "cert.pem")
    both_path = os.path.join(directory, "server.pem")
    _write(cert_path, _pem(certificate))
    _write(both_path, key_pem + _pem(certificate))
    return cert_path, both_path


def _sign(subject: Any, authority: Authority | None, *, san: str | None, ca: bool,
          expired: bool) -> tuple[Any, Any]:
    """A new key and its certificate for `subject`, signed by `authority` (or by itself)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    day = datetime.timedelta(days=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(authority.certificate.subject if authority else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - 2 * day if expired else now - day)
        .not_valid_after(now - day if expired else now + day)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]),
                                        critical=False)
    return key, builder.sign(authority.key if authority else key, hashes.SHA256())


def _pem(certificate: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(certificate.public_bytes(serialization.Encoding.PEM))


def _write(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


class FullDisk:
    """Stands in for a store's sqlite3 connection and fails every commit as a full disk does.

    Everything else goes to the real connection, so the store rolls the
    transaction back as it does on SQLITE_FULL.
    """

    def __init__(self, db: Any) -> None:
        self.db = db

    def commit(self) -> None:
        import sqlite3

        raise sqlite3.OperationalError("database or disk is full")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)
