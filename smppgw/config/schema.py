"""
Every configuration key, declared once: its section, its TOML name, the kind of value it
takes (which carries its checks), its default, the fields of the config object it sets,
and whether changing it needs a new connection.

Everything else is derived from these tables: the known-keys check and its "did you
mean", the parser in L{smppgw.config.load}, the list of keys a misplaced top-level key
is looked up in, and what L{smppgw.config.diff} calls a re-bind.  A key is read in the
order of its table, so a kind may rely on the keys above it (C{address} on C{mode}).

A C{connection} key is one whose change the SMSC (or, for C{[amp] listen}, the host)
can only see through a new connection; see L{smppgw.config.diff}.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import values
from .admin import DEFAULT_ADMIN_LISTEN, AdminListen, check_password_hash
from .kinds import (
    Boolean,
    Choice,
    Duration,
    Integer,
    Kind,
    Listen,
    Number,
    Path,
    SmppValue,
    SmscAddress,
    SystemId,
    Text,
)
from .model import (
    DEFAULT_ALPHABETS,
    DEFAULT_SYSTEM_TYPE,
    ENCODINGS,
    LOG_LEVELS,
    LONG_MESSAGE_METHODS,
    MODES,
    RECEIPT_ID_FORMATS,
    AdminConfig,
    AmpConfig,
    ModuleConfig,
    NodeConfig,
    ServerConfig,
    StoreConfig,
)
from .storekinds import Lease, NodeName, PasswordFile, StorePath, StoreUrl

__all__ = ["ADMIN", "AMP", "MODULE", "NODE", "SECTIONS", "SERVER", "STORE", "Key", "Section"]


@dataclass(frozen=True)
class Key:
    """One configuration key."""

    #: Its name in the TOML table.
    name: str
    #: How its value is read and checked.
    kind: Kind
    #: What it is when the table leaves it out (for several fields, a tuple of them).
    default: Any = None
    #: The config object's fields it sets, when not just the one named like the key.
    fields: tuple[str, ...] = ()
    #: Whether a change of it needs a new connection (a server re-binds, AMP re-listens).
    connection: bool = False
    #: What it means, in a few words.
    doc: str = ""

    @property
    def targets(self) -> tuple[str, ...]:
        """The fields it sets."""
        return self.fields or (self.name,)


if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_T = TypeVar("_T", bound="DataclassInstance")


@dataclass(frozen=True)
class Section(Generic[_T]):
    """One TOML table (or array of tables) and the config object it becomes."""

    name: str
    title: str
    cls: type[_T]
    keys: tuple[Key, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """The TOML keys it knows, in the order they are read."""
        return tuple(key.name for key in self.keys)

    @property
    def secrets(self) -> frozenset[str]:
        """The keys whose value is never shown: those setting a field kept out of repr()."""
        hidden = {f.name for f in dataclasses.fields(self.cls) if not f.repr}
        return frozenset(key.name for key in self.keys if hidden & set(key.targets))

    def named(self, name: str) -> Key:
        """The key called C{name} in the TOML table."""
        for key in self.keys:
            if key.name == name:
                return key
        raise KeyError(name)


MODULE = Section("module", "[module]", ModuleConfig, (
    Key("log_level", Choice(LOG_LEVELS), "problems", doc="what goes into the log"),
    Key("reject_if_not_relayed_in", Duration(), 600.0,
        doc="how long a message may wait for an SMSC before NOT_RELAYED"),
    Key("dialog_timeout", Duration(), 7200.0, doc="how long an unused SMS Dialog binding lives"),
    Key("source_address", Text(values.check_source_address), "", connection=True,
        doc="the local IP address SMPP connections leave from"),
    Key("default_gateway", Text(), "", doc="the server carrying +E164@telnum"),
    Key("system_type", Text(partial(values.check_c_octets, limit=values.MAX_SYSTEM_TYPE,
                                    what="the system type")), DEFAULT_SYSTEM_TYPE,
        doc="the bind's system_type when a system_id gives none"),
    Key("reassembly_timeout", Duration(), 1800.0,
        doc="how long the parts of a long inbound SMS are waited for"),
))

AMP = Section("amp", "[amp]", AmpConfig, (
    Key("listen", Listen(), connection=True,
        doc="the host endpoint; by default amp.sock beside the store"),
    Key("secret", Text(), "", doc="what Login must give, if set"),
    Key("max_connections", Integer(1, 100_000), 100, doc="host connections open at once"),
))

STORE = Section("store", "[store]", StoreConfig, (
    Key("url", StoreUrl(), "", doc="postgresql://user@host/db: the PostgreSQL store"),
    Key("password_file", PasswordFile(), ("", ""), fields=("password_file", "password"),
        doc="the file holding the PostgreSQL password, if not in the URL or libpq's environment"),
    Key("path", StorePath(), "var/smppgw.sqlite", fields=("path", "state_dir"),
        doc="the SQLite file, unless url is set"),
))

NODE = Section("node", "[node]", NodeConfig, (
    Key("name", NodeName(), "", doc="this gateway node's name; by default the host name"),
    Key("lease", Lease(), 10.0, doc="how long this node's lease runs, at least 3s"),
))

SERVER = Section("server", "[[server]]", ServerConfig, (
    Key("name", Text(values.check_server_name), "", doc="the server's name, unique"),
    Key("mode", Choice(MODES), "send-and-receive", connection=True,
        doc="off, or which way messages go: the bind type"),
    Key("address", SmscAddress(), (False, "", values.DEFAULT_SMPP_PORT),
        fields=("tls", "host", "port"), connection=True, doc="[tls:]host[:port] of the SMSC"),
    Key("system_id", SystemId(), fields=("system_id", "system_type"), connection=True,
        doc="id[@SystemType] to bind with"),
    Key("password", Text(values.check_password), "", connection=True,
        doc="the bind's password"),
    Key("sender", Text(values.check_sender), "", doc="the source address, '*' for the IM sender"),
    Key("dialogs", Boolean(), False, doc="whether SMS Dialog prefixes are used"),
    Key("recipient", Text(values.check_recipient), "",
        doc="the IM address an SMS without a dialog goes to"),
    Key("encoding", Choice(ENCODINGS), "gsm", doc="how outbound text is encoded"),
    Key("default_alphabet", Choice(DEFAULT_ALPHABETS), "gsm",
        doc="what data_coding 0 means on this link"),
    Key("keep_alive", Duration(positive=True), 30.0, doc="the enquire_link period"),
    Key("window", Integer(1, 1000), 10, doc="submits awaiting an answer at once"),
    Key("throughput", Number(0), 0.0,
        doc="submits per second at most (over all its binds); 0 for no limit"),
    Key("throttle_pause", Duration(positive=True), 1.0, doc="the pause after ESME_RTHROTTLED"),
    Key("min_rate", Number(0, positive=True), 1.0, doc="the learned rate's floor"),
    Key("rate_step", Number(0, positive=True), 0.5, doc="how fast the learned rate climbs"),
    Key("rate_period", Duration(positive=True), 1.0, doc="how often the learned rate climbs"),
    Key("registered_delivery", Boolean(), False, doc="whether receipts are asked for"),
    Key("response_timeout", Duration(positive=True), 10.0,
        doc="how long an SMSC may take to answer"),
    Key("max_parts", Integer(1, 255), 10, doc="parts of a long message at most"),
    Key("long_messages", Choice(LONG_MESSAGE_METHODS), "udh", doc="how long messages are split"),
    Key("ca_file", Path(values.check_existing_file), "", connection=True,
        doc="the CA certificates a TLS SMSC must chain to"),
    Key("client_cert", Path(values.check_existing_file), "", connection=True,
        doc="the certificate and key shown to a TLS SMSC"),
    Key("verify", Boolean(), True, connection=True, doc="whether a TLS SMSC is verified"),
    # SMPP 3.4 section 5.2.5 and 5.2.6: the defined TON and NPI values.
    Key("source_ton", Integer(0, 6, optional=True), doc="the sender's TON, if forced"),
    Key("source_npi", SmppValue(values.SMPP_NPI_VALUES), doc="the sender's NPI, if forced"),
    Key("receipt_id_format", Choice(RECEIPT_ID_FORMATS), "auto",
        doc="how receipt message ids are written"),
    Key("country_code", Text(partial(values.check_digits, pattern=values.COUNTRY_CODE,
                                     what="1 to 3 digits, not led by 0")), "",
        doc="the calling code of national numbers"),
    Key("national_prefix", Text(partial(values.check_digits, pattern=values.NATIONAL_PREFIX,
                                        what="up to 4 digits")), "0",
        doc="the trunk prefix of national numbers"),
    Key("receipt_timeout", Duration(never=True), 48 * 3600.0,
        doc="how long a receipt is waited for; 0 for ever"),
    Key("max_binds", Integer(1, 64), 1,
        doc="nodes bound to it at once, on a shared PostgreSQL store"),
))

ADMIN = Section("admin", "[admin]", AdminConfig, (
    Key("listen", AdminListen(), DEFAULT_ADMIN_LISTEN, connection=True,
        doc='the web admin\'s endpoint; "" for none'),
    Key("password_hash", Text(check_password_hash), "",
        doc="the argon2 hash of the admin's password (smppgw set-admin-password)"),
    Key("metrics_token", Text(), "", doc="the bearer token /metrics asks for, if set"),
))

#: The sections, in the order the file's documentation shows them.
SECTIONS = (MODULE, AMP, STORE, NODE, SERVER, ADMIN)
