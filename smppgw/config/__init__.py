"""
The gateway's configuration: a TOML file parsed once into frozen, validated dataclasses.

Everything that can be wrong with a value is found here, at start-up, and reported as a
L{ConfigError} whose message names the key (C{server[2].mode}, C{module.dialog_timeout}),
shows the bad value and says what is allowed.  The rest of the gateway can then trust
these objects without checking them again.

Relative file paths (the store, a C{unix:} AMP socket, TLS files) are taken
relative to the folder of the config file that L{load_config} reads, never to
the working directory, so the gateway finds the same files wherever it starts.

Passwords and the AMP secret are kept out of C{repr()} and out of every error message:
config objects end up in logs and tracebacks.

The package, by concern: L{model} (the objects the gateway reads), L{schema} (every
key, declared once), L{kinds} and L{storekinds} (how a key's value is read), L{values}
(the checks of single values), L{endpoints} (the AMP listener's description), L{load}
(file to objects) and L{diff} (what changed between two configurations).
"""

from .diff import ConfigChange, ServerChange, diff
from .endpoints import listen_arguments, unix_socket_path
from .load import load_config, parse_config
from .model import (
    BIND_TYPES,
    DEFAULT_ALPHABETS,
    DEFAULT_SYSTEM_TYPE,
    ENCODINGS,
    LOG_LEVELS,
    LONG_MESSAGE_METHODS,
    MODES,
    RECEIPT_ID_FORMATS,
    AdminConfig,
    AmpConfig,
    Config,
    ModuleConfig,
    NodeConfig,
    ServerConfig,
    StoreConfig,
)
from .schema import ADMIN, AMP, MODULE, NODE, SERVER, STORE
from .values import DEFAULT_SMPP_PORT, SMPP_NPI_VALUES, ConfigError, parse_duration

__all__ = [
    "listen_arguments",
    "BIND_TYPES",
    "DEFAULT_ALPHABETS",
    "DEFAULT_SMPP_PORT",
    "DEFAULT_SYSTEM_TYPE",
    "ENCODINGS",
    "LOG_LEVELS",
    "LONG_MESSAGE_METHODS",
    "MODES",
    "RECEIPT_ID_FORMATS",
    "SMPP_NPI_VALUES",
    "AdminConfig",
    "AmpConfig",
    "Config",
    "ConfigChange",
    "ConfigError",
    "ModuleConfig",
    "NodeConfig",
    "ServerChange",
    "ServerConfig",
    "StoreConfig",
    "diff",
    "load_config",
    "parse_config",
    "parse_duration",
    "unix_socket_path",
]

# Each section's keys by name, in the order they are read (the fuzz tests walk them).
_MODULE_KEYS = MODULE.names
_AMP_KEYS = AMP.names
_STORE_KEYS = STORE.names
_NODE_KEYS = NODE.names
_SERVER_KEYS = SERVER.names
_ADMIN_KEYS = ADMIN.names
