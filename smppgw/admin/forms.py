"""
The Settings and Servers forms: what each field shows, and the configuration a
submission gives.

A field shows the value as the file spells it (C{"10m"} stays C{"10m"}), or the key's
default when the file leaves it out.  On submission only the fields whose text changed
are written into the document, so that an Update leaves every other line of the file
as it was.  A password never reaches the page: a stored one shows as L{PLACEHOLDER},
and a placeholder sent back keeps it.

The edited document is then checked exactly as a file is: each table key by key with
L{read_table} (so that every bad field gets its own message), then the whole text with
L{parse_config} (unique names, the default gateway, every rule that spans keys).  A
submission with any error gives no configuration at all.

The Servers form follows the reference module's record table: one row per C{[[server]]}
and an empty last row; filling the last row creates a server, and emptying a row's
address (not its name) removes that server.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import tomlkit
from tomlkit.items import Table
from tomlkit.toml_document import TOMLDocument

from smppgw.config import Config, ConfigError, ModuleConfig, parse_config
from smppgw.config.kinds import Boolean, Duration, Integer, Number, SmppValue
from smppgw.config.load import read_table
from smppgw.config.schema import MODULE, SERVER, Key, Section

from .configfile import server_tables, table

__all__ = [
    "PLACEHOLDER",
    "Fields",
    "Submission",
    "check",
    "edit",
    "label",
    "module_fields",
    "revision",
    "server_rows",
    "servers_submitted",
    "settings_submitted",
    "submitted",
]

#: What a stored password shows as: ten bullets, which no password can be (at most 8 ASCII).
PLACEHOLDER = "\u2022" * 10

#: A form's fields by key name: the text of a field, or whether a checkbox is ticked.
Fields = dict[str, str | bool]

# The reference module's words for its fields; the others are named after their key.
_LABELS = {
    "log_level": "Log Level",
    "reject_if_not_relayed_in": "Reject if not Relayed in",
    "dialog_timeout": "Dialog Timeout",
    "source_address": "Source IP Address",
    "address": "SMSC Address",
    "system_id": "System ID[@SystemType]",
    "keep_alive": "Keep Alive",
    "default_alphabet": "data_coding 0 alphabet",
    "registered_delivery": "Receipts",
    "ca_file": "CA File",
    "client_cert": "Client Certificate",
    "verify": "Verify TLS",
    "source_ton": "Source TON",
    "source_npi": "Source NPI",
    "receipt_id_format": "Receipt ID Format",
}


def label(key: Key) -> str:
    """What a field is called on the page."""
    return _LABELS.get(key.name) or key.name.replace("_", " ").title()


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    if (seconds * 1000).is_integer():
        return f"{int(seconds * 1000)}ms" if seconds else "0s"
    return repr(seconds)


def _default(key: Key) -> str | bool:
    if isinstance(key.kind, Boolean):
        return bool(key.default)
    if isinstance(key.kind, Duration):
        return _duration(key.default)
    if key.default is None or isinstance(key.default, tuple):
        return ""
    if isinstance(key.default, float):
        return _number(key.default)
    return str(key.default)


def _shown(section: Section[Any], key: Key, entries: Mapping[str, Any]) -> str | bool:
    if key.name not in entries:
        return _default(key)
    value = entries[key.name]
    if isinstance(value, bool):
        return value if isinstance(key.kind, Boolean) else str(value).lower()
    if isinstance(value, float):
        value = _number(value)
    text = str(value)
    if key.name in section.secrets and text:
        return PLACEHOLDER
    return text


def fields_of(section: Section[Any], entries: Mapping[str, Any]) -> Fields:
    """What the form shows for a table's entries (a plain mapping of TOML values)."""
    return {key.name: _shown(section, key, entries) for key in section.keys}


def module_fields(document: TOMLDocument) -> Fields:
    """The Settings form's fields for the document's C{[module]}."""
    module = document.get(MODULE.name)
    return fields_of(MODULE, module.unwrap() if isinstance(module, Table) else {})


def server_rows(document: TOMLDocument) -> list[Fields]:
    """The Servers form's rows: one per C{[[server]]}, then the empty row."""
    servers = document.get(SERVER.name)
    rows = [fields_of(SERVER, t.unwrap()) for t in servers] if servers is not None else []
    return [*rows, fields_of(SERVER, {})]


def submitted(section: Section[Any], form: Mapping[str, str], prefix: str) -> Fields:
    """A form's fields as submitted, the inputs named C{prefix + key}."""
    return {key.name: (prefix + key.name in form) if isinstance(key.kind, Boolean)
            else form.get(prefix + key.name, "") for key in section.keys}


_INTEGER = re.compile(r"[+-]?[0-9]+")


def _toml_value(key: Key, value: str | bool) -> Any:
    """A field's text as the TOML value the key's kind reads; None removes the key."""
    if isinstance(value, bool):
        return value
    text = value.strip()
    kind = key.kind
    if isinstance(kind, SmppValue) or (isinstance(kind, Integer) and kind.optional):
        if not text:
            return None
    if isinstance(kind, Integer | SmppValue | Number | Duration) and _INTEGER.fullmatch(text):
        return int(text)
    if isinstance(kind, Number | Duration):
        try:
            return float(text)
        except ValueError:
            pass
    # Anything else goes in as the text written: the kind's check then says what is wrong.
    return value


def edit(section: Section[Any], entries: Table, before: Fields, after: Fields) -> None:
    """Write into C{entries} the fields whose value changed from C{before} to C{after}."""
    for key in section.keys:
        value = after[key.name]
        if value == before[key.name] or (key.name in section.secrets and value == PLACEHOLDER):
            continue
        converted = _toml_value(key, value)
        if converted is None:
            if key.name in entries:
                del entries[key.name]
        else:
            entries[key.name] = converted


def revision(document: TOMLDocument) -> str:
    """A short digest of the document: the version of it a page was made from."""
    return hashlib.sha256(tomlkit.dumps(document).encode()).hexdigest()[:16]


@dataclass
class Submission:
    """A submitted form: the edited document and its configuration, or the errors by input."""

    document: TOMLDocument
    #: Error messages by input name (C{module.log_level}, C{s2.window}); C{""} for the form.
    errors: dict[str, str] = field(default_factory=dict)
    config: Config | None = None


def _message(error: ConfigError, key: str) -> str:
    """The message without the key it starts with, which the field already shows."""
    text = str(error)
    return text[len(key) + 2:] if text.startswith(key + ": ") else text


_KEYED = re.compile(r"(module|server\[([0-9]+)\])\.([a-z_]+): ")


def check(submission: Submission, source: str, base: str | None, current: Config,
          rows: list[int] | None = None) -> Submission:
    """
    Check the edited document as a file is checked, key by key then whole; on success
    set its configuration.

    @param rows: the form row of each C{[[server]]} in the document (their inputs are
        named after the row, which differs from the index once a row is removed).
    """
    document, errors = submission.document, submission.errors
    servers = server_tables(document) if SERVER.name in document else []
    rows = rows if rows is not None else list(range(len(servers)))
    module_table = document.get(MODULE.name)
    module, module_errors = read_table(
        MODULE, module_table.unwrap() if isinstance(module_table, Table) else {}, MODULE.name,
        base, {})
    for name, error in module_errors.items():
        errors[f"module.{name}"] = _message(error, f"module.{name}")
    context: ModuleConfig = module if module is not None else current.module
    for index, entries in enumerate(servers):
        prefix = f"server[{index}]"
        _, server_errors = read_table(SERVER, entries.unwrap(), prefix, base, {"module": context})
        for name, error in server_errors.items():
            errors[f"s{rows[index]}.{name}"] = _message(error, f"{prefix}.{name}")
    if errors:
        return submission
    try:
        submission.config = parse_config(tomlkit.dumps(document), source=source, base=base)
    except ConfigError as error:
        text = str(error).removeprefix(f"{source}: ")
        match = _KEYED.match(text)
        if match is None:
            errors[""] = text
        else:
            where = (f"module.{match[3]}" if match[2] is None
                     else f"s{rows[int(match[2])]}.{match[3]}")
            errors[where] = text[match.end():]
    return submission


def settings_submitted(document: TOMLDocument, form: Mapping[str, str], source: str,
                       base: str | None, current: Config) -> Submission:
    """The Settings form's submission applied to (a copy of) C{document}, checked."""
    document = copy(document)
    module = table(document, MODULE.name)
    edit(MODULE, module, fields_of(MODULE, module.unwrap()), submitted(MODULE, form, "module."))
    return check(Submission(document), source, base, current)


#: The fields of the empty row that, filled in without an address, are a mistake.
_IDENTITY = ("name", "system_id", "password", "sender", "recipient")


def servers_submitted(document: TOMLDocument, form: Mapping[str, str], source: str,
                      base: str | None, current: Config) -> Submission:
    """
    The Servers form's submission applied to (a copy of) C{document}, checked: rows with
    an empty address removed, a filled-in last row added.
    """
    document = copy(document)
    servers = server_tables(document)
    count = len(servers)
    errors: dict[str, str] = {}
    kept: list[int] = []
    removed: list[int] = []
    for row in range(count):
        after = submitted(SERVER, form, f"s{row}.")
        if not str(after["address"]).strip():
            removed.append(row)
            continue
        edit(SERVER, servers[row], fields_of(SERVER, servers[row].unwrap()), after)
        kept.append(row)
    for row in reversed(removed):
        del servers[row]
    empty = fields_of(SERVER, {})
    new = submitted(SERVER, form, f"s{count}.")
    if str(new["address"]).strip():
        entries = tomlkit.table()
        edit(SERVER, entries, empty, new)
        servers.append(entries)
        kept.append(count)
    elif any(new[name] != empty[name] for name in _IDENTITY):
        errors[f"s{count}.address"] = (
            "a new server needs an SMSC address; fill it in, or empty the row")
    submission = Submission(document, errors)
    if errors:
        return submission
    return check(submission, source, base, current, kept)


def copy(document: TOMLDocument) -> TOMLDocument:
    """An independent copy of C{document}, comments and all."""
    return tomlkit.parse(tomlkit.dumps(document))
