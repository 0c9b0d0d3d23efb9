"""
The responders of the operator's AMP commands (`smppgw.host.commands`): the part of
`GatewayAMP` the ``smppgw`` command line talks to.

They delegate to `smppgw.relay.operator.Operator` over the gateway's outbound
queue, to the gateway's ``reload`` callable, and to `smppgw.store.sqlite.backup` run off the
reactor's thread.  They answer only a logged-in connection, as every command
but Login does.  A list that would not fit in one AMP value is cut short: the
answer's ``total`` says how many there are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.protocols import amp
from twisted.python.failure import Failure

from smppgw.errors import BadRequest, SignalError, Unavailable
from smppgw.host.commands import (
    Backup,
    ListDialogs,
    ListQueue,
    LookupMessage,
    RejectMessage,
    Reload,
    RetireDialog,
)
from smppgw.relay.operator import Operator
from smppgw.store.sqlite.backup import BackupDone, backup

if TYPE_CHECKING:
    from smppgw.relay.outbound import Outbound
    from smppgw.smpp.log import SmppLog

#: Bytes of one AMP value a list may fill (AMP allows 65,535; the rest is margin).
LIST_BUDGET = 60_000
#: The most rows per server ListQueue shows, whatever the host asks.
MAX_QUEUE_SHOWN = 1000

#: Names of the operator's commands on the wire.
OPERATOR_COMMANDS = frozenset(command.commandName for command in (
    ListQueue, RejectMessage, LookupMessage, ListDialogs, RetireDialog, Reload, Backup))


def size(rows: list[dict[str, Any]]) -> int:
    """About how many bytes ``rows`` take as an AmpList value."""
    # Per key: two length prefixes, the key and the value; two bytes end a box.
    return sum(2 + sum(4 + len(key) + len(str(value).encode("utf-8"))
                       for key, value in row.items() if value is not None) for row in rows)


def fit(rows: list[dict[str, Any]], budget: int = LIST_BUDGET) -> list[dict[str, Any]]:
    """The first of ``rows`` that an AmpList value holds within ``budget`` bytes."""
    used = 0
    for index, row in enumerate(rows):
        used += size([row])
        if used > budget:
            return rows[:index]
    return rows


class OperatorCommands(amp.CommandLocator):
    """The operator's commands, answered from ``outbound`` and the gateway's callables."""

    outbound: Outbound
    log: SmppLog
    #: What re-reads the configuration file and applies it (`Gateway.reload`); None: cannot.
    reload: Callable[[], Any] | None = None
    #: Runs a blocking function off the reactor's thread; fires with its result (None: at once).
    run_in_thread: Callable[..., Deferred[Any]] | None = None

    @property
    def operator(self) -> Operator:
        return Operator(self.outbound)

    @ListQueue.responder
    def list_queue(self, server: str | None = None, limit: int | None = None) -> dict[str, Any]:
        if limit is not None and limit < 1:
            raise BadRequest(f"limit must be at least 1, not {limit}")
        queues = self.operator.queues(server, min(limit or MAX_QUEUE_SHOWN, MAX_QUEUE_SHOWN))
        waiting = [{"request_id": w.request_id, "server": w.server, "created": w.created,
                    "age": w.age, "parts": w.parts, "sent": w.sent, "in_flight": w.in_flight,
                    "host": w.host} for queue in queues for w in queue.waiting]
        return {"servers": [{"server": q.server, "total": q.total} for q in queues],
                "waiting": fit(waiting)}

    @RejectMessage.responder
    def reject_message(self, request_id: str) -> dict[str, Any]:
        rejected = self.operator.reject(request_id)  # the link's log says so
        return {"server": rejected.server, "age": rejected.age, "parts": rejected.parts,
                "sent": rejected.sent}

    @LookupMessage.responder
    def lookup_message(self, query: str) -> dict[str, Any]:
        messages = self.operator.lookup(query)
        kept: list[dict[str, Any]] = []
        parts: list[dict[str, Any]] = []
        used = [0, 0]
        # Messages and their parts are cut together: no message without its parts.
        for m in messages:
            row = {"request_id": m.request_id, "server": m.server, "destination": m.destination,
                   "sender": m.sender, "created": m.created, "state": m.state,
                   "outcome": m.outcome}
            mine = [{"request_id": m.request_id, "number": p.number,
                     "message_id": p.message_id or "", "submit": p.submit,
                     "receipt": p.receipt, "receipt_due": p.receipt_due} for p in m.parts]
            more = [size([row]), size(mine)]
            if used[0] + more[0] > LIST_BUDGET or used[1] + more[1] > LIST_BUDGET:
                if not kept:  # one message of more parts than fit: its first parts
                    kept, parts = [row], fit(mine)
                break
            kept.append(row)
            parts.extend(mine)
            used = [used[0] + more[0], used[1] + more[1]]
        return {"total": len(messages), "messages": kept, "parts": parts}

    @ListDialogs.responder
    def list_dialogs(self) -> dict[str, Any]:
        bindings = self.operator.bindings()
        rows = [{"phone": b.phone, "letter": b.letter, "address": b.address,
                 "last_used": b.last_used, "idle": b.idle} for b in bindings]
        return {"total": len(rows), "bindings": fit(rows)}

    @RetireDialog.responder
    def retire_dialog(self, phone: str, letter: str) -> dict[str, Any]:
        retired = self.operator.retire(phone, letter)
        self.log.major("dialog binding @{letter} of {phone} retired by the operator (AMP)",
                       letter=retired.letter, phone=retired.phone)
        return {"phone": retired.phone, "letter": retired.letter, "address": retired.address}

    @Reload.responder
    def reload_config(self) -> Any:
        if self.reload is None:
            raise Unavailable("this gateway cannot reload")
        d = maybeDeferred(self.reload)

        def done(changes: Any) -> dict[str, Any]:
            return {"changes": [str(line) for line in changes]}

        return d.addCallbacks(done, _unavailable("not reloaded"))

    @Backup.responder
    def backup_store(self, path: str, force: bool | None = None) -> Any:
        source = self.outbound.store.path
        d = (self.run_in_thread or maybeDeferred)(backup, source, path, bool(force))

        def done(copy: BackupDone) -> Mapping[str, Any]:
            self.log.major("store backed up to {path} ({size} bytes)", path=copy.path,
                           size=copy.size)
            return {"path": copy.path, "size": copy.size, "schema_version": copy.schema_version}

        return d.addCallbacks(done, _unavailable(f"no backup written to {path}"))


def _unavailable(what: str) -> Callable[[Failure], Any]:
    """An errback that passes an operator error on and makes anything else UNAVAILABLE."""

    def failed(failure: Failure) -> Any:
        if failure.check(SignalError):
            return failure
        error = failure.value
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        where = getattr(error, "filename", None)
        raise Unavailable(f"{what}: {where}: {reason}" if where else f"{what}: {reason}")

    return failed
