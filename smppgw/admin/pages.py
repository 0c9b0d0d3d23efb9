"""
The admin's HTML: plain server-rendered pages, every value escaped, no script.

Each function gives a page's text.  A form always carries the session's CSRF token
(L{csrf_input}); an error shows beside the field it is about, in an element whose id
is C{error-} and the input's name.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from html import escape
from typing import Any

from smppgw import __version__
from smppgw.config.kinds import Boolean, Choice
from smppgw.config.schema import MODULE, SERVER, Key, Section

from .forms import Fields, label

__all__ = ["demo_navigation", "layout", "login_page", "no_password_page", "servers_page", "settings_page",
           "status_page"]

_STYLE = """
body { font-family: sans-serif; margin: 1em 2em; }
nav a, nav button { margin-right: 1em; }
nav form { display: inline; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 2px 4px; vertical-align: top; text-align: left; }
.error { color: #b00; display: block; font-size: small; }
.message { background: #efe; padding: .5em; border: 1px solid #8c8; }
.problem { background: #fee; padding: .5em; border: 1px solid #c88; }
.wide { overflow-x: auto; }
"""


#: The demo's pages (path, title) that the navigation links to while a page renders:
#: set by the page (see L{demo_navigation}), empty unless the gateway runs a demo.
_DEMO_LINKS: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("demo_links", default=())


@contextmanager
def demo_navigation(links: Sequence[tuple[str, str]]) -> Iterator[None]:
    """While in it, L{layout}'s navigation links to the demo's pages C{links} too."""
    token = _DEMO_LINKS.set(tuple(links))
    try:
        yield
    finally:
        _DEMO_LINKS.reset(token)


def _attributes(attributes: Mapping[str, Any]) -> str:
    parts = []
    for name, value in attributes.items():
        if value is True:
            parts.append(f" {name}")
        elif value not in (False, None):
            parts.append(f' {name}="{escape(str(value))}"')
    return "".join(parts)


def csrf_input(csrf: str) -> str:
    return f'<input type="hidden" name="csrf" value="{escape(csrf)}">'


def layout(title: str, body: str, *, csrf: str | None = None, message: str = "",
           problem: str = "") -> str:
    """A whole page: the navigation (when logged in, C{csrf} given), notices, C{body}."""
    nav = ""
    if csrf is not None:
        nav = ('<nav><a href="/status">Status</a><a href="/settings">Settings</a>'
               '<a href="/servers">Servers</a><a href="/queue">Queue</a>'
               '<a href="/lookup">Message lookup</a><a href="/dialogs">Dialogs</a>'
               f'<form method="post" action="/logout">{csrf_input(csrf)}'
               '<button type="submit">Log out</button></form></nav>')
        nav += _demo_nav()
    notices = ""
    if message:
        notices += f'<div class="message" id="message">{message}</div>'
    if problem:
        notices += f'<div class="problem" id="problem">{escape(problem)}</div>'
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)} - smppgw</title><style>{_STYLE}</style></head>"
            f"<body>{nav}<h1>{escape(title)}</h1>{notices}{body}"
            f"<footer><small>smppgw {escape(__version__)}</small></footer></body></html>")


def _demo_nav() -> str:
    links = "".join(f'<a href="{escape(path)}">{escape(title)}</a>'
                    for path, title in _DEMO_LINKS.get())
    return f'<nav id="demo-nav"><small>Demo mode:</small> {links}</nav>' if links else ""


def no_password_page(config_path: str | None) -> str:
    where = f" -c {config_path}" if config_path else ""
    return layout("No admin password set", (
        "<p>The admin answers nobody until it has a password. On the gateway's host, run</p>"
        f"<pre>smppgw set-admin-password{escape(where)}</pre>"
        "<p>then reload the gateway (<code>smppgw reload</code> or SIGHUP) or restart it.</p>"))


def login_page(csrf: str, problem: str = "") -> str:
    return layout("Log in", (
        f'<form method="post" action="/login">{csrf_input(csrf)}'
        '<label>Password <input type="password" name="password" autofocus'
        ' autocomplete="current-password"></label> '
        '<button type="submit" name="login">Log in</button></form>'), problem=problem)


def _input(key: Key, name: str, value: str | bool, secret: bool, errors: Mapping[str, str],
           size: int = 12) -> str:
    error = errors.get(name)
    shown = f'<span class="error" id="error-{escape(name)}">{escape(error)}</span>' if error else ""
    common = {"name": name, "id": name, "title": key.doc, "aria-label": label(key)}
    if isinstance(key.kind, Boolean):
        return f'<input type="checkbox"{_attributes({**common, "checked": bool(value)})}>{shown}'
    if isinstance(key.kind, Choice):
        options = "".join(
            f'<option{_attributes({"value": choice, "selected": choice == value})}>'
            f"{escape(choice)}</option>" for choice in key.kind.choices)
        return f"<select{_attributes(common)}>{options}</select>{shown}"
    kind = "password" if secret else "text"
    extra = {"autocomplete": "new-password"} if secret else {}
    return (f'<input{_attributes({"type": kind, **common, "value": value, "size": size, **extra})}>'
            f"{shown}")


def _form_errors(errors: Mapping[str, str]) -> str:
    if "" not in errors:
        return ""
    return f'<p class="error" id="error-form">{escape(errors[""])}</p>'


def settings_page(fields: Fields, revision: str, csrf: str, errors: Mapping[str, str],
                  message: str = "", problem: str = "") -> str:
    rows = "".join(
        f"<tr><th><label for=\"module.{key.name}\">{escape(label(key))}</label></th>"
        f"<td>{_input(key, f'module.{key.name}', fields[key.name], False, errors, 30)}</td>"
        f"<td><small>{escape(key.doc)}</small></td></tr>" for key in MODULE.keys)
    body = (f'<form method="post" action="/settings">{csrf_input(csrf)}'
            f'<input type="hidden" name="revision" value="{escape(revision)}">'
            f"{_form_errors(errors)}<table>{rows}</table>"
            '<p><button type="submit" name="update">Update</button></p></form>')
    return layout("Settings", body, csrf=csrf, message=message, problem=problem)


def servers_page(rows: Sequence[Fields], revision: str, csrf: str, errors: Mapping[str, str],
                 message: str = "", problem: str = "") -> str:
    section: Section[Any] = SERVER
    head = "".join(f'<th title="{escape(key.doc)}">{escape(label(key))}</th>'
                   for key in section.keys)
    lines = []
    for row, fields in enumerate(rows):
        cells = "".join(
            f"<td>{_input(key, f's{row}.{key.name}', fields[key.name], key.name in section.secrets, errors)}</td>"
            for key in section.keys)
        lines.append(f'<tr id="row-{row}">{cells}</tr>')
    body = (f'<form method="post" action="/servers">{csrf_input(csrf)}'
            f'<input type="hidden" name="revision" value="{escape(revision)}">'
            f'<input type="hidden" name="rows" value="{len(rows) - 1}">'
            "<p>Fill in the last, empty row to create a server; empty a server's SMSC Address"
            " (not its Name) to remove it; set its Mode to off to keep it without connecting."
            " A stored password shows as dots: leave them to keep it.</p>"
            f'{_form_errors(errors)}<div class="wide"><table><tr>{head}</tr>{"".join(lines)}'
            '</table></div><p><button type="submit" name="update">Update</button></p></form>')
    return layout("Servers", body, csrf=csrf, message=message, problem=problem)


_STATUS_COLUMNS = (("name", "Name"), ("mode", "Mode"), ("address", "SMSC Address"),
                   ("bind_type", "Bind type"), ("state", "State"), ("since", "Since"),
                   ("queued", "Queued"), ("window", "Window in use"), ("sent", "Sent"),
                   ("received", "Received"), ("failed", "Failed"), ("throttled", "Throttled"),
                   ("per_second", "Msg/s (last minute)"), ("rate", "Paced at (msg/s)"),
                   ("last_error", "Last error"))
_ACTIONS = (("disconnect", "Disconnect"), ("rebind", "Re-bind"), ("disable", "Disable"))


def _when(at: float, now: float | None) -> str:
    """A moment as UTC time, and how long ago when C{now} is known."""
    text = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
    if now is None:
        return text
    ago = max(0, int(now - at))
    hours, rest = divmod(ago, 3600)
    span = (f"{hours}h {rest // 60}m" if hours else f"{rest // 60}m {rest % 60}s" if rest >= 60
            else f"{rest}s")
    return f"{text}, {span} ago"


def _status_value(column: str, row: Mapping[str, Any], now: float | None = None) -> str:
    value = row.get(column)
    if column == "window":
        window = row.get("window")
        return "" if window is None else f"{row.get('in_flight', 0)} / {window}"
    if value is None:
        return ""
    if column == "rate" and isinstance(value, float):
        return f"{value:.1f}"
    if column == "per_second" and isinstance(value, float):
        return f"{value:.2f}"
    if column == "since" and isinstance(value, int | float):
        return _when(value, now)
    if column == "last_error" and value and isinstance(row.get("last_error_at"), int | float):
        return f"{value} ({_when(row['last_error_at'], now)})"
    if column == "name" and value == "":
        return '""'
    return str(value)


def status_page(rows: Iterable[Mapping[str, Any]] | None, log_level: str, levels: Sequence[str],
                csrf: str, message: str = "", problem: str = "", now: float | None = None) -> str:
    """Per server its state and since when, its queue, window and counters; the log level.

    C{rows} are C{Outbound.status()}'s (None before the gateway started); C{now} (the
    clock's seconds) lets the times say how long ago they were.
    """
    head = "".join(f"<th>{escape(title)}</th>" for _, title in _STATUS_COLUMNS)
    lines = []
    for index, row in enumerate(rows or ()):
        cells = "".join(f'<td class="{column}">{escape(_status_value(column, row, now))}</td>'
                        for column, _ in _STATUS_COLUMNS)
        buttons = "".join(
            f'<form method="post" action="/status" style="display:inline">{csrf_input(csrf)}'
            f'<input type="hidden" name="server" value="{escape(str(row["name"]))}">'
            f'<button type="submit" name="action" value="{action}"'
            f' id="{action}-{index}">{title}</button></form>' for action, title in _ACTIONS)
        lines.append(f'<tr id="status-{index}">{cells}<td>{buttons}</td></tr>')
    table = (f"<table><tr>{head}<th></th></tr>{''.join(lines)}</table>" if rows is not None
             else "<p>The gateway is not started yet.</p>")
    options = "".join(f'<option{_attributes({"value": level, "selected": level == log_level})}>'
                      f"{escape(level)}</option>" for level in levels)
    body = (f"{table}<h2>Log level</h2>"
            f'<form method="post" action="/status">{csrf_input(csrf)}'
            f'<select name="log_level" id="log_level" aria-label="Log Level">{options}</select> '
            '<button type="submit" name="action" value="log_level">Set</button></form>')
    return layout("Status", body, csrf=csrf, message=message, problem=problem)
