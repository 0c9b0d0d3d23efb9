"""
The admin's operator pages: Queue, Message lookup and Dialogs.

- **Queue** (``/queue``): what waits for each sending server, oldest first, with
  its age, and a Reject button per message: the host that waits for it gets
  NOT_RELAYED, rejected by the operator.
- **Message lookup** (``/lookup?q=``): a request_id or a phone number; the
  message's server, addresses, time, state and outcome, and each part's message
  id, submit state and receipt state.  A lookup changes nothing, so its form
  is a GET.
- **Dialogs** (``/dialogs``): the SMS Dialog bindings, with a Retire button each.

They read and act through `smppgw.relay.operator.Operator`, as the ``smppgw``
command line does; the buttons are POSTs behind the login and the CSRF token,
like every form of the admin.
"""

from __future__ import annotations

from html import escape
from typing import Any

from twisted.web.server import Request

from smppgw.errors import SignalError
from smppgw.relay.operator import DialogBinding, Message, Operator, ServerQueue, age, when

from .auth import Session
from .pages import csrf_input, layout
from .web import _lines, _Page, _send

__all__ = ["DialogsPage", "LookupPage", "QueuePage", "dialogs_page", "lookup_page",
           "queue_page"]

#: Messages the Queue page shows per server: the oldest, which are the stuck ones.
QUEUE_SHOWN = 200


def _name(server: str) -> str:
    return f'"{server}"' if server == "" else server


def _table(head: tuple[str, ...], rows: list[str], empty: str, id: str) -> str:
    if not rows:
        return f"<p>{escape(empty)}</p>"
    cells = "".join(f"<th>{escape(title)}</th>" for title in head)
    return f'<table id="{id}"><tr>{cells}</tr>{"".join(rows)}</table>'


def _button(action: str, csrf: str, label: str, id: str, **fields: str) -> str:
    hidden = "".join(f'<input type="hidden" name="{name}" value="{escape(value)}">'
                     for name, value in fields.items())
    return (f'<form method="post" action="{action}" style="display:inline">{csrf_input(csrf)}'
            f'{hidden}<button type="submit" id="{escape(id)}">{escape(label)}</button></form>')


def queue_page(queues: list[ServerQueue] | None, csrf: str, message: str = "",
               problem: str = "") -> str:
    """Each server's waiting messages, oldest first, a Reject button each."""
    if queues is None:
        return layout("Queue", "<p>The gateway is not started yet.</p>", csrf=csrf,
                      message=message, problem=problem)
    sections = []
    for index, queue in enumerate(queues):
        shown = (f" (the oldest {len(queue.waiting)} shown)"
                 if len(queue.waiting) < queue.total else "")
        rows = [
            f'<tr id="waiting-{escape(w.request_id)}"><td class="request_id">'
            f"{escape(w.request_id)}</td><td>{escape(when(w.created))}</td>"
            f'<td class="age">{escape(age(w.age))}</td><td>{w.parts}</td><td>{w.sent}</td>'
            f"<td>{w.in_flight}</td><td>{escape(w.host)}</td><td>"
            + _button("/queue", csrf, "Reject", f"reject-{w.request_id}",
                      request_id=w.request_id)
            + "</td></tr>" for w in queue.waiting]
        sections.append(
            f"<h2>Server {escape(_name(queue.server))}: {queue.total} waiting{shown}</h2>"
            + _table(("Request ID", "Queued at", "Age", "Parts", "Sent", "In flight", "From",
                      ""), rows, "Nothing waits.", f"queue-{index}"))
    body = ("<p>Reject ends a message now: nothing more of it is sent, and the host that waits"
            " for it gets NOT_RELAYED.</p>" + "".join(sections))
    return layout("Queue", body, csrf=csrf, message=message, problem=problem)


def lookup_page(query: str, messages: list[Message], csrf: str, problem: str = "") -> str:
    """The lookup form, and what the query found."""
    form = ('<form method="get" action="/lookup"><label>Request ID or phone number'
            f' <input type="text" name="q" id="q" value="{escape(query)}" size="40"></label> '
            '<button type="submit">Look up</button></form>')
    found = []
    for m in messages:
        outcome = f" ({escape(m.outcome)})" if m.outcome else ""
        parts = [f"<tr><td>{p.number}</td><td>{escape(p.message_id or '')}</td>"
                 f"<td>{escape(p.submit)}</td><td>{escape(p.receipt)}</td>"
                 f"<td>{escape(when(p.receipt_due)) if p.receipt_due is not None else ''}</td>"
                 "</tr>" for p in m.parts]
        found.append(
            f'<div class="found" id="message-{escape(m.request_id)}">'
            f"<h2>{escape(m.request_id)}</h2><table>"
            f"<tr><th>Server</th><td>{escape(_name(m.server))}</td></tr>"
            f"<tr><th>To</th><td>{escape(m.destination)}</td></tr>"
            f"<tr><th>From</th><td>{escape(m.sender)}</td></tr>"
            f"<tr><th>Accepted</th><td>{escape(when(m.created))}</td></tr>"
            f'<tr><th>State</th><td class="state">{escape(m.state)}{outcome}</td></tr></table>'
            + _table(("Part", "Message ID", "Submit", "Receipt", "Receipt given up at"),
                     parts, "", f"parts-{escape(m.request_id)}") + "</div>")
    return layout("Message lookup", form + "".join(found), csrf=csrf, problem=problem)


def dialogs_page(bindings: list[DialogBinding] | None, csrf: str, message: str = "",
                 problem: str = "") -> str:
    """The dialog bindings, a Retire button each."""
    if bindings is None:
        return layout("Dialogs", "<p>The gateway is not started yet.</p>", csrf=csrf,
                      message=message, problem=problem)
    rows = [f'<tr id="binding-{escape(b.phone)}-{escape(b.letter)}"><td>{escape(b.phone)}</td>'
            f"<td>@{escape(b.letter)}</td><td>{escape(b.address)}</td>"
            f"<td>{escape(when(b.last_used))}</td><td>{escape(age(b.idle))}</td><td>"
            + _button("/dialogs", csrf, "Retire", f"retire-{b.phone}-{b.letter}",
                      phone=b.phone, letter=b.letter)
            + "</td></tr>" for b in bindings]
    body = ("<p>Replies from a phone reach the IM user its letter is bound to. Retire forgets"
            " a binding now: a reply naming it goes to the server's default recipient.</p>"
            + _table(("Phone", "Letter", "IM address", "Last used", "Idle", ""), rows,
                     "No dialog bindings.", "bindings"))
    return layout("Dialogs", body, csrf=csrf, message=message, problem=problem)


def _code(error: SignalError) -> int:
    return 404 if error.code == "NOT_FOUND" else 503 if error.code == "UNAVAILABLE" else 400


class _OperatorPage(_Page):
    def operator(self) -> Operator | None:
        outbound = self.site.gateway.outbound
        return Operator(outbound) if outbound is not None else None


class QueuePage(_OperatorPage):
    def render_queue(self, session: Session, message: str = "", problem: str = "") -> str:
        operator = self.operator()
        queues = operator.queues(limit=QUEUE_SHOWN) if operator is not None else None
        return queue_page(queues, session.csrf, message, problem)

    def get(self, request: Request, session: Session | None) -> bytes:
        assert session is not None
        return _send(request, 200, self.render_queue(session))

    def post(self, request: Request, session: Session, form: dict[str, str]) -> bytes:
        operator = self.operator()
        request_id = form.get("request_id", "")
        if operator is None:
            return _send(request, 503, self.render_queue(session, problem="not started yet"))
        try:
            rejected = operator.reject(request_id)
        except SignalError as error:
            return _send(request, _code(error), self.render_queue(session, problem=str(error)))
        done = (f"rejected {request_id} (server {_name(rejected.server)}, queued"
                f" {age(rejected.age)}): its host gets NOT_RELAYED")
        return _send(request, 200, self.render_queue(session, _lines([done])))


class LookupPage(_OperatorPage):
    def get(self, request: Request, session: Session | None) -> bytes:
        assert session is not None
        query = _argument(request, "q").strip()
        operator = self.operator()
        if not query:
            return _send(request, 200, lookup_page("", [], session.csrf))
        if operator is None:
            return _send(request, 503, lookup_page(query, [], session.csrf, "not started yet"))
        try:
            messages = operator.lookup(query)
        except SignalError as error:
            return _send(request, _code(error), lookup_page(query, [], session.csrf, str(error)))
        return _send(request, 200, lookup_page(query, messages, session.csrf))


class DialogsPage(_OperatorPage):
    def render_dialogs(self, session: Session, message: str = "", problem: str = "") -> str:
        operator = self.operator()
        bindings = operator.bindings() if operator is not None else None
        return dialogs_page(bindings, session.csrf, message, problem)

    def get(self, request: Request, session: Session | None) -> bytes:
        assert session is not None
        return _send(request, 200, self.render_dialogs(session))

    def post(self, request: Request, session: Session, form: dict[str, str]) -> bytes:
        operator = self.operator()
        if operator is None:
            return _send(request, 503, self.render_dialogs(session, problem="not started yet"))
        try:
            retired = operator.retire(form.get("phone", ""), form.get("letter", ""))
        except SignalError as error:
            return _send(request, _code(error), self.render_dialogs(session, problem=str(error)))
        done = f"retired @{retired.letter} of {retired.phone} (to {retired.address})"
        return _send(request, 200, self.render_dialogs(session, _lines([done])))


def _argument(request: Request, name: str) -> str:
    values: Any = (request.args or {}).get(name.encode(), [])
    return values[0].decode("utf-8", "replace") if values else ""
