"""
The Phone page: in demo mode, the phones the built-in SMSC simulator plays.

It lists the phones that got an SMS (the last one first): each one's number, whom its
reply goes to, its last messages decoded with their dialog prefix, and the delivery
receipts sent for them.  Its form sends a reply from a phone, as ``smppgw demo-reply``
does: the page asks the gateway's `smppgw.testing.demo.DemoPhones` to check it and
send it, and says what was sent once the gateway has answered the deliver_sm.

The page and its link in the navigation exist only when the gateway runs a demo (it
has phones); elsewhere C{/phone} is as unknown as any other path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from smppgw.errors import SignalError
from smppgw.testing.phonebook import Phone

from . import pages
from .auth import Session
from .web import AdminSite, _Page, _send

__all__ = ["PhonePage", "add_phone_page", "phone_page"]

#: The form's fields, and where a problem of `DemoPhones.check` shows (the others: above the form).
_FIELDS = {"phone": "phone", "text": "text"}


def add_phone_page(site: AdminSite, root: Resource) -> None:
    """Put the Phone page at C{/phone} and in the navigation, when C{site}'s gateway runs a demo."""
    phones = getattr(site.gateway, "phones", None)
    if phones is None:
        return
    root.putChild(b"phone", PhonePage(site, phones))
    site.demo_links = (*site.demo_links, ("/phone", "Phone"))


class PhonePage(_Page):
    """GET lists the phones; POST sends a phone's reply."""

    def __init__(self, site: AdminSite, phones: Any) -> None:
        super().__init__(site)
        self.phones = phones

    def render_phones(self, session: Session, form: Mapping[str, str], errors: Mapping[str, str],
                      message: str = "", problem: str = "") -> str:
        return phone_page(self.phones.seen(), session.csrf, form, errors, message, problem)

    def get(self, request: Request, session: Session | None) -> bytes:
        assert session is not None
        to = (request.args or {}).get(b"to", [b""])[0].decode("utf-8", "replace")
        return _send(request, 200, self.render_phones(session, {"phone": to}, {}))

    def post(self, request: Request, session: Session, form: dict[str, str]) -> bytes | int:
        phone, text = form.get("phone", ""), form.get("text", "")
        problems = self.phones.check(phone, text)
        if problems:
            errors = {_FIELDS.get(field, ""): str(error) for field, error in problems.items()}
            return _send(request, 400, self.render_phones(session, form, errors))
        try:
            d = self.phones.reply(phone, text)
        except SignalError as error:
            return _send(request, 400, self.render_phones(session, form, {"": str(error)}))
        gone: list[Failure] = []
        request.notifyFinish().addErrback(gone.append)

        def sent(answer: dict[str, str]) -> None:
            destination = answer["destination"] or "(no address)"
            server = answer["server"]
            done = (f"{escape(answer['source'])} sent {escape(_quoted(text))} to"
                    f" {escape(destination)} through server {escape(_quoted(server))}:"
                    " the gateway took it.")
            finish(200, {"phone": answer["source"]}, done, "")

        def refused(failure: Failure) -> None:
            code = 409 if failure.check(SignalError) else 500
            finish(code, form, "", f"not sent: {failure.getErrorMessage()}")

        def finish(code: int, shown: Mapping[str, str], message: str, problem: str) -> None:
            if gone:
                return
            # Rendered after render() returned: the navigation is set again here.
            with pages.demo_navigation(self.site.demo_links):
                page = self.render_phones(session, shown, {}, message, problem)
            request.write(_send(request, code, page))
            request.finish()

        d.addCallbacks(sent, refused)
        return NOT_DONE_YET


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _error(name: str, errors: Mapping[str, str]) -> str:
    error = errors.get(name)
    return f'<span class="error" id="error-{name}">{escape(error)}</span>' if error else ""


def _messages(phone: Phone) -> str:
    items = []
    for message in phone.messages:
        part = f" (part {message.part[0]} of {message.part[1]})" if message.part else ""
        server = _quoted(message.server)
        items.append(
            f'<li><code class="text">{escape(message.text)}</code>{escape(part)}'
            f"<br><small>from {escape(message.sender)}, server {escape(server)}, message"
            f' {escape(message.message_id)}; receipt: <span class="receipt">'
            f"{escape(message.receipt)}</span></small></li>")
    return "<ol>" + "".join(items) + "</ol>"


def phone_page(phones: Sequence[Phone], csrf: str, form: Mapping[str, str],
               errors: Mapping[str, str], message: str = "", problem: str = "") -> str:
    """The phones, and the form that sends a reply (C{form} holds what it shows).

    C{message} is HTML (what was sent, escaped); errors show beside their field,
    the one for C{""} above the form.
    """
    options = "".join(f'<option value="{escape(p.number)}">' for p in phones)
    phone = form.get("phone", "") or (phones[0].number if phones else "")
    general = (f'<p class="error" id="error-form">{escape(errors[""])}</p>' if "" in errors
               else "")
    body = [
        "<h2>Send a reply</h2>",
        f'<form method="post" action="/phone">{pages.csrf_input(csrf)}{general}',
        '<p><label for="phone">From phone</label> '
        f'<input type="text" name="phone" id="phone" list="numbers" size="20"'
        f' value="{escape(phone)}" aria-label="Phone">{_error("phone", errors)}'
        f'<datalist id="numbers">{options}</datalist></p>',
        '<p><label for="text">Text</label> '
        f'<input type="text" name="text" id="text" size="60"'
        f' value="{escape(form.get("text", ""))}" aria-label="Text">{_error("text", errors)}</p>',
        '<p><button type="submit" name="send">Send</button></p></form>',
        "<p><small>The simulator sends it to the gateway as an SMS from that phone, to whoever"
        " last sent the phone one. With dialogs on, each message a phone got starts with its"
        " sender's letter (<code>@a=alice@example.com</code>): begin the reply with"
        " <code>@a:</code> to answer that sender.</small></p>",
        "<h2>Phones</h2>",
    ]
    if not phones:
        body.append("<p>No phone has got an SMS yet: send one, with <code>smppgw send"
                    " +15551234 \"hello\"</code> or from a host.</p>")
    else:
        rows = [
            f'<tr id="phone-{index}"><td class="number">{escape(p.number)}</td>'
            f'<td class="sender">{escape(p.last_sender)}</td>'
            f'<td class="messages">{_messages(p)}</td>'
            f'<td class="received">{p.received}</td><td class="receipts">{p.receipts}</td>'
            f'<td><a href="/phone?to={quote(p.number)}" id="reply-{index}">Reply</a></td></tr>'
            for index, p in enumerate(phones)]
        body.append("<table><tr><th>Number</th><th>Last sender (a reply goes to)</th>"
                    "<th>Last messages, newest first</th><th>Got</th><th>Receipts sent</th>"
                    f"<th></th></tr>{''.join(rows)}</table>")
    return pages.layout("Phone", "".join(body), csrf=csrf, message=message, problem=problem)
