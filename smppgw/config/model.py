"""
The configuration objects the rest of the gateway reads: frozen dataclasses, one per
section, and the constants their values are drawn from.

The fields say only a name and a type.  Which TOML key sets each field, its default and
its checks are declared once, in L{smppgw.config.schema}.  Passwords, the AMP secret and
the admin's hash and token are kept out of C{repr()}: config objects end up in logs and tracebacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "BIND_TYPES",
    "AdminConfig",
    "DEFAULT_ALPHABETS",
    "DEFAULT_SYSTEM_TYPE",
    "ENCODINGS",
    "LOG_LEVELS",
    "LONG_MESSAGE_METHODS",
    "MODES",
    "RECEIPT_ID_FORMATS",
    "AmpConfig",
    "Config",
    "ModuleConfig",
    "NodeConfig",
    "ServerConfig",
    "StoreConfig",
]

LOG_LEVELS = ("none", "major", "problems", "low-level", "all")
MODES = ("off", "send-only", "receive-only", "send-and-receive")
BIND_TYPES = {
    "send-only": "transmitter",
    "receive-only": "receiver",
    "send-and-receive": "transceiver",
}
DEFAULT_SYSTEM_TYPE = "smppgw"

ENCODINGS = ("gsm", "latin-1", "ascii", "ucs2")
#: What data_coding 0 means on a link ("SMSC default alphabet"), both directions.
DEFAULT_ALPHABETS = ("gsm", "ascii", "latin-1")
LONG_MESSAGE_METHODS = ("udh", "sar", "payload")
RECEIPT_ID_FORMATS = ("auto", "hex", "decimal", "string")


@dataclass(frozen=True)
class ModuleConfig:
    """Settings for the whole gateway (the C{[module]} table)."""

    log_level: str
    reject_if_not_relayed_in: float
    dialog_timeout: float
    source_address: str
    default_gateway: str
    system_type: str
    reassembly_timeout: float


@dataclass(frozen=True)
class AmpConfig:
    """Where hosts reach the gateway over AMP (the C{[amp]} table)."""

    listen: str
    secret: str = field(repr=False)
    max_connections: int


@dataclass(frozen=True)
class AdminConfig:
    """The web admin (the C{[admin]} table): its listener, password hash and metrics token."""

    listen: str
    password_hash: str = field(repr=False)
    metrics_token: str = field(repr=False)


@dataclass(frozen=True)
class StoreConfig:
    """Where the gateway keeps its state (the C{[store]} table).

    C{url} (a libpq URL) selects the PostgreSQL store, C{path} (the SQLite file) is
    empty then; C{password} is the one C{password_file} held.  C{state_dir} is where the
    default AMP socket lives: the SQLite file's folder, else C{var/} by the config file.
    """

    url: str = field(repr=False)
    password_file: str
    password: str = field(repr=False)
    path: str
    state_dir: str

    @property
    def postgres(self) -> bool:
        """Whether the store is a PostgreSQL database (else an SQLite file)."""
        return bool(self.url)


@dataclass(frozen=True)
class NodeConfig:
    """This gateway node (the C{[node]} table): its name, and how long its lease runs."""

    name: str
    lease: float


@dataclass(frozen=True)
class ServerConfig:
    """
    One SMSC the gateway binds to (one C{[[server]]} table).

    C{host} is bare (an IPv6 address has no brackets); L{address} is the display form.
    """

    name: str
    mode: str
    host: str
    port: int
    tls: bool
    system_id: str
    system_type: str
    password: str = field(repr=False)
    sender: str
    dialogs: bool
    recipient: str
    encoding: str
    default_alphabet: str
    keep_alive: float
    window: int
    throughput: float
    throttle_pause: float
    min_rate: float
    rate_step: float
    rate_period: float
    registered_delivery: bool
    response_timeout: float
    max_parts: int
    long_messages: str
    ca_file: str
    client_cert: str
    verify: bool
    source_ton: int | None
    source_npi: int | None
    receipt_id_format: str
    country_code: str
    national_prefix: str
    receipt_timeout: float
    #: On a PostgreSQL store, how many nodes bind this server at once (one bind each).
    max_binds: int

    @property
    def bind_type(self) -> str:
        """
        The SMPP bind this mode asks for: transmitter, receiver or transceiver.

        @raise ValueError: the server is off, so it never binds.
        """
        try:
            return BIND_TYPES[self.mode]
        except KeyError:
            raise ValueError(f"server {self.name!r} is {self.mode!r}: it does not bind") from None

    @property
    def can_send(self) -> bool:
        """Whether messages may be submitted through this server."""
        return self.mode in ("send-only", "send-and-receive")

    @property
    def can_receive(self) -> bool:
        """Whether this server delivers messages to the gateway."""
        return self.mode in ("receive-only", "send-and-receive")

    @property
    def enabled(self) -> bool:
        """Whether the gateway connects to this server at all."""
        return self.mode != "off"

    @property
    def address(self) -> str:
        """The SMSC address as an operator writes it: C{[tls:]host:port}."""
        if not self.host:
            return ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'tls:' if self.tls else ''}{host}:{self.port}"


@dataclass(frozen=True)
class Config:
    """The whole configuration."""

    module: ModuleConfig
    amp: AmpConfig
    store: StoreConfig
    servers: tuple[ServerConfig, ...]
    admin: AdminConfig
    node: NodeConfig

    def server(self, name: str) -> ServerConfig:
        """
        The server called C{name}.

        @raise KeyError: no server has that name.
        """
        for server in self.servers:
            if server.name == name:
                return server
        raise KeyError(name)
