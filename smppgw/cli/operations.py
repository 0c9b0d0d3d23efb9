"""
The operator's commands: queue, reject, lookup, dialogs, retire-dialog, reload, backup.

Each asks the running gateway one AMP command (`smppgw.host.commands`) and
prints its answer for a person: ages as "2m05s", times in UTC.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.defer import inlineCallbacks

from smppgw.host.commands import (
    Backup,
    ListDialogs,
    ListQueue,
    LookupMessage,
    RejectMessage,
    Reload,
    RetireDialog,
)
from smppgw.relay.operator import age, when

from .reach import Output, connect, say, server_name


def table(out: Output, header: Iterable[str], rows: Iterable[Iterable[object]],
          indent: str = "") -> None:
    """Print ``rows`` under ``header`` in columns as wide as their widest cell."""
    lines = [list(header)] + [[str(cell) for cell in row] for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    for line in lines:
        say(out, indent + "  ".join(cell.ljust(width)
                                    for cell, width in zip(line, widths, strict=True)).rstrip())


@inlineCallbacks
def ask(reactor: Any, args: argparse.Namespace, command: Any, **arguments: Any) -> Any:
    """One command's answer from the gateway."""
    gateway = yield connect(reactor, args.config)
    try:
        answer = yield gateway.callRemote(command, **arguments)
    finally:
        gateway.transport.loseConnection()
    return answer


@inlineCallbacks
def queue(reactor: Any, args: argparse.Namespace, out: Output, err: Output) -> Any:
    """Print what waits for each server (or SERVER), oldest first, with its age."""
    options: dict[str, Any] = {"limit": args.limit}
    if args.server is not None:
        options["server"] = args.server
    answer = yield ask(reactor, args, ListQueue, **options)
    waiting = answer["waiting"]
    for entry in answer["servers"]:
        name, total = entry["server"], entry["total"]
        mine = [w for w in waiting if w["server"] == name]
        shown = f" (the oldest {len(mine)} shown)" if len(mine) < total else ""
        say(out, f"server {server_name(name)}: {total} waiting{shown}")
        if mine:
            table(out, ("request_id", "age", "parts", "sent", "in flight", "from"),
                  ((w["request_id"], age(w["age"]), w["parts"], w["sent"], w["in_flight"],
                    w["host"]) for w in mine), indent="  ")
    return 0


@inlineCallbacks
def reject(reactor: Any, args: argparse.Namespace, out: Output, err: Output) -> Any:
    """End one queued message: the host waiting for it hears NOT_RELAYED."""
    answer = yield ask(reactor, args, RejectMessage, request_id=args.request_id)
    parts = answer["parts"]
    say(out, f"rejected {args.request_id} (server {server_name(answer['server'])}, queued"
             f" {age(answer['age'])}, {answer['sent']} of {parts} part{'s' if parts != 1 else ''}"
             " sent): its host gets NOT_RELAYED")
    return 0


@inlineCallbacks
def lookup(reactor: Any, args: argparse.Namespace, out: Output, err: Output) -> Any:
    """Print where a message got to, part by part: by request_id, or every recent one to a phone."""
    answer = yield ask(reactor, args, LookupMessage, query=args.query)
    for message in answer["messages"]:
        outcome = f" ({message['outcome']})" if message["outcome"] else ""
        sender = f" from {message['sender']}" if message["sender"] else ""
        say(out, f"{message['request_id']}: to {message['destination'] or '?'}{sender} through"
                 f" server {server_name(message['server'])}, accepted {when(message['created'])}:"
                 f" {message['state']}{outcome}")
        parts = [p for p in answer["parts"] if p["request_id"] == message["request_id"]]
        for part in parts:
            line = f"  part {part['number']}: {part['submit']}"
            if part["message_id"]:
                line += f" as message id {part['message_id']}"
            if part["receipt"]:
                line += f"; receipt {part['receipt']}"
                if part.get("receipt_due") is not None:
                    line += f" until {when(part['receipt_due'])}"
            say(out, line)
    if answer["total"] > len(answer["messages"]):
        say(out, f"({len(answer['messages'])} of {answer['total']} shown)")
    return 0


@inlineCallbacks
def dialogs(reactor: Any, args: argparse.Namespace, out: Output, err: Output) -> Any:
    """Print every live dialog binding."""
    answer = yield ask(reactor, args, ListDialogs)
    bindings = answer["bindings"]
    if not bindings:
        say(out, "no dialog bindings")
        return 0
    table(out, ("phone", "letter", "IM address", "last used", "idle"),
          ((b["phone"], b["letter"], b["address"], when(b["last_used"]), age(b["idle"]))
           for b in bindings))
    if answer["total"] > len(bindings):
        say(out, f"({len(bindings)} of {answer['total']} shown)")
    return 0


@inlineCallbacks
def retire_dialog(reactor: Any, args: argparse.Namespace, out: Output, err: Output) -> Any:
    """Forget one dialog binding now."""
    answer = yield ask(reactor, args, RetireDialog, phone=args.phone, letter=args.letter)
    say(out, f"retired @{answer['letter']} of {answer['phone']} (to {answer['address']})")
    return 0


@inlineCallbacks
def reload(reactor: Any, args: argparse.Namespace, out: Output, err: Output) -> Any:
    """Have the gateway read its configuration file again and apply what changed."""
    answer = yield ask(reactor, args, Reload)
    for line in answer["changes"] or ["reloaded: nothing changed"]:
        say(out, line)
    return 0


@inlineCallbacks
def backup(reactor: Any, args: argparse.Namespace, out: Output, err: Output) -> Any:
    """Have the running gateway copy its store into FILE."""
    # The gateway writes the file: a relative path means the caller's folder, not its.
    path = os.path.abspath(args.file)
    answer = yield ask(reactor, args, Backup, path=path, force=args.force)
    say(out, f"the store is backed up to {answer['path']} ({answer['size']} bytes, schema"
             f" version {answer['schema_version']})")
    return 0


def register(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the operator's commands with ``command(name, run, summary, description)``."""
    sub = command("queue", queue, "show what waits for each server, oldest first",
                  "Show the messages waiting for each sending server (or SERVER), oldest first,"
                  " with their age, parts sent and who asked.")
    sub.add_argument("server", nargs="?", default=None, help="only this server")
    sub.add_argument("--limit", type=int, default=20,
                     help="at most this many per server (default 20)")
    sub = command("reject", reject, "reject one queued message (its host gets NOT_RELAYED)",
                  "End one queued message now: nothing more of it is sent, and the host that"
                  " waits for it gets NOT_RELAYED, rejected by the operator.")
    sub.add_argument("request_id", help="the message's request_id (see smppgw queue)")
    sub = command("lookup", lookup, "show where a message got to, part by part",
                  "Show a message's parts, message ids, submit and receipt states and times:"
                  " the one REQUEST_ID names, or the newest ones to the phone number PHONE.")
    sub.add_argument("query", metavar="REQUEST_ID|PHONE", help="a request_id or +E164 number")
    command("dialogs", dialogs, "show the SMS Dialog bindings",
            "Show every live dialog binding: phone, letter, IM address, last use.")
    sub = command("retire-dialog", retire_dialog, "forget one SMS Dialog binding now",
                  "Forget the binding of PHONE's letter LETTER now: a reply naming it goes to the"
                  " default recipient, and the IM user's next message binds a letter afresh.")
    sub.add_argument("phone", help="the phone, e.g. +15551234")
    sub.add_argument("letter", help="the letter, e.g. a")
    command("reload", reload, "re-read the configuration file and apply what changed",
            "Have the gateway read its configuration file again and apply the difference live,"
            " one line per change. An invalid file changes nothing.")
    sub = command("backup", backup, "copy the running gateway's store into FILE",
                  "Copy the store while the gateway runs and writes (SQLite's online backup)"
                  " into FILE, written by the gateway on its host: a temporary file beside it,"
                  " renamed into place. A FILE that exists is refused without --force.")
    sub.add_argument("file", help="the backup's file (relative to this folder)")
    sub.add_argument("--force", action="store_true", help="replace FILE if it exists")
