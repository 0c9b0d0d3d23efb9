"""
The admin's resources, the Update that applies a configuration live and saves it, and
the listener's service.

Every page needs a login; with no C{[admin] password_hash} set, every page answers
only a page saying how to set one.  Every POST must carry the session's CSRF token
(403 otherwise).  Other resources may be put beside the pages on L{AdminSite.root}
(C{/metrics}, C{/healthz}): they are not behind the login.

An Update, from the Settings or Servers form or a Status button, goes: the page's
revision must be the document's (else someone changed it since the page was shown),
the file must be what the admin read (else it was edited on disk), the new
configuration must pass every check a file passes (else the errors show and nothing
changes); then L{smppgw.admin.editor.Editor} applies it live and saves the file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from html import escape
from typing import Any

from tomlkit.toml_document import TOMLDocument
from twisted.application.internet import StreamServerEndpointService
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.pages import notFound
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from smppgw.config import LOG_LEVELS
from smppgw.config.schema import MODULE, SERVER

from . import pages
from .auth import LoginThrottle, PasswordCheck, Runner, Session, Sessions
from .configfile import (
    server_tables,
    table,
)
from .editor import AdminGateway, Editor, Refused
from .forms import (
    PLACEHOLDER,
    Submission,
    check,
    copy,
    module_fields,
    server_rows,
    servers_submitted,
    settings_submitted,
    submitted,
)
from .health import Health, Heartbeat, StoreWatch
from .metrics import Metrics

__all__ = ["AdminGateway", "AdminSite", "Editor", "admin_service"]

COOKIE = b"smppgw_admin"


def _form(request: Request) -> dict[str, str]:
    """The request's form, decoded; the first value of each name."""
    form: dict[str, str] = {}
    for name, values in (request.args or {}).items():
        if values:
            form[name.decode("utf-8", "replace")] = values[0].decode("utf-8", "replace")
    return form


def _client(request: Request) -> str:
    return str(getattr(request.getClientAddress(), "host", "local"))


def _send(request: Request, code: int, text: str) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/html; charset=utf-8")
    return text.encode("utf-8")


def _redirect(request: Request, to: bytes) -> bytes:
    request.setResponseCode(303)
    request.setHeader(b"location", to)
    return b""


def _lines(lines: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{escape(line)}</li>" for line in lines) + "</ul>"


class _Page(Resource):
    """A page behind the login: GET shows it, POST (CSRF-checked) acts."""

    isLeaf = True
    login_required = True

    def __init__(self, site: AdminSite) -> None:
        super().__init__()
        self.site = site

    def render(self, request: Request) -> bytes | int:
        with pages.demo_navigation(self.site.demo_links):
            return self.answer(request)

    def answer(self, request: Request) -> bytes | int:
        for name, value in ((b"cache-control", b"no-store"), (b"x-frame-options", b"DENY"),
                            (b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"no-referrer"),
                            (b"content-security-policy",
                             b"default-src 'none'; style-src 'unsafe-inline';"
                             b" form-action 'self'; frame-ancestors 'none'")):
            request.setHeader(name, value)
        config = self.site.gateway.config
        if not config.admin.password_hash:
            return _send(request, 403, pages.no_password_page(self.site.editor.path))
        cookie = request.getCookie(COOKIE)
        session = self.site.admin_sessions.get(cookie.decode("ascii", "replace") if cookie else None)
        if request.method == b"POST":
            form = _form(request)
            if session is None or not session.csrf_matches(form.get("csrf", "")):
                return _send(request, 403, pages.layout(
                    "Refused", "<p>The form's token is missing or out of date: this request"
                    ' was not made from the admin\'s own page. <a href="/status">Back</a></p>'))
            if self.login_required and not session.authenticated:
                return _send(request, 403, pages.layout(
                    "Refused", '<p>Not logged in. <a href="/login">Log in</a></p>'))
            return self.post(request, session, form)
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD, POST")
            return _send(request, 405, pages.layout("Method not allowed", ""))
        if self.login_required and (session is None or not session.authenticated):
            return _redirect(request, b"/login")
        return self.get(request, session)

    def get(self, request: Request, session: Session | None) -> bytes | int:
        raise NotImplementedError

    def post(self, request: Request, session: Session, form: dict[str, str]) -> bytes | int:
        raise NotImplementedError


class _Login(_Page):
    login_required = False

    def get(self, request: Request, session: Session | None) -> bytes:
        if session is None:
            session = self.site.start_session(request)
        if session.authenticated:
            return _redirect(request, b"/status")
        return _send(request, 200, pages.login_page(session.csrf))

    def post(self, request: Request, session: Session, form: dict[str, str]) -> int | bytes:
        client = _client(request)
        wait = self.site.throttle.wait(client)
        if wait:
            return _send(request, 429, pages.login_page(
                session.csrf, f"Too many failed logins from {client}: try again in"
                f" {int(wait) + 1} s."))
        password_hash = self.site.gateway.config.admin.password_hash
        d = self.site.password.verify(password_hash, form.get("password", ""))

        def checked(good: bool) -> None:
            if good:
                self.site.throttle.succeeded(client)
                self.site.start_session(request, self.site.admin_sessions.log_in(session))
                request.write(_redirect(request, b"/status"))
            else:
                self.site.throttle.failed(client)
                request.write(_send(request, 401, pages.login_page(
                    session.csrf, "Wrong password.")))
            request.finish()

        def failed(failure: Failure) -> None:
            request.write(_send(request, 500, pages.login_page(
                session.csrf, f"The password could not be checked: {failure.getErrorMessage()}")))
            request.finish()

        d.addCallbacks(checked, failed)
        return NOT_DONE_YET


class _Logout(_Page):
    login_required = False

    def get(self, request: Request, session: Session | None) -> bytes:
        return _redirect(request, b"/login")

    def post(self, request: Request, session: Session, form: dict[str, str]) -> bytes:
        self.site.admin_sessions.end(session)
        request.addCookie(COOKIE, b"", path="/", max_age="0", httpOnly=True,
                          secure=request.isSecure(), sameSite="strict")
        return _redirect(request, b"/login")


class _Form(_Page):
    """A page whose form is an Update of the configuration."""

    def shown(self, document: TOMLDocument, form: Mapping[str, str] | None) -> Any:
        """The form's fields: the document's, or as submitted."""
        raise NotImplementedError

    page: Callable[..., str]
    changed: Callable[..., Submission]

    def render_form(self, session: Session, errors: Mapping[str, str], message: str,
                    document: TOMLDocument | None, form: Mapping[str, str] | None) -> str:
        editor = self.site.editor
        return type(self).page(self.shown(document or editor.document(), form), editor.revision(),
                               session.csrf, errors, message, editor.refusal())

    def get(self, request: Request, session: Session | None) -> bytes:
        assert session is not None
        return _send(request, 200, self.render_form(session, {}, "", None, None))

    def post(self, request: Request, session: Session, form: dict[str, str]) -> bytes:
        editor = self.site.editor
        if form.get("revision") != editor.revision():
            return _send(request, 409, self.render_form(session, {
                "": "the configuration changed since this page was shown; here it is as it is"
                    " now: make your change again"}, "", None, None))
        submission = type(self).changed(editor.document(), form, editor.source, editor.base,
                                        self.site.gateway.config)
        if submission.errors:
            return _send(request, 400, self.render_refused(session, submission.errors, form))
        return self.site.apply(request, session, submission, self.render_form)

    def render_refused(self, session: Session, errors: dict[str, str],
                       form: dict[str, str]) -> str:
        return self.render_form(session, errors, "", None, form)


class _Settings(_Form):
    page = pages.settings_page
    changed = settings_submitted

    def shown(self, document: TOMLDocument, form: Mapping[str, str] | None) -> Any:
        return submitted(MODULE, form, "module.") if form is not None else module_fields(document)


class _Servers(_Form):
    page = pages.servers_page
    changed = servers_submitted

    def shown(self, document: TOMLDocument, form: Mapping[str, str] | None) -> Any:
        stored = server_rows(document)
        if form is None:
            return stored
        rows = [submitted(SERVER, form, f"s{row}.") for row in range(len(stored))]
        for row, fields in zip(rows, stored, strict=True):
            # A password typed into a refused form is not sent back to the browser.
            row["password"] = fields["password"]
        return rows

    def render_refused(self, session: Session, errors: dict[str, str],
                       form: dict[str, str]) -> str:
        for name, value in form.items():
            if name.endswith(".password") and value not in ("", PLACEHOLDER):
                errors.setdefault(name, "not kept, since the form was refused: type it again")
        return super().render_refused(session, errors, form)


class _Status(_Page):
    def render_status(self, session: Session, errors: Mapping[str, str], message: str,
                      document: object = None, form: object = None) -> str:
        gateway = self.site.gateway
        rows = gateway.outbound.status() if gateway.outbound is not None else None
        problem = errors.get("", "") or next(iter(errors.values()), "")
        return pages.status_page(rows, gateway.config.module.log_level, LOG_LEVELS,
                                 session.csrf, message, problem, self.site.clock.seconds())

    def get(self, request: Request, session: Session | None) -> bytes:
        assert session is not None
        return _send(request, 200, self.render_status(session, {}, ""))

    def post(self, request: Request, session: Session, form: dict[str, str]) -> bytes:
        gateway, action, name = self.site.gateway, form.get("action", ""), form.get("server", "")
        if action == "log_level":
            document = copy(self.site.editor.document())
            table(document, MODULE.name)["log_level"] = form.get("log_level", "")
            return self._update(request, session, document)
        if all(server.name != name for server in gateway.config.servers):
            return _send(request, 400, self.render_status(
                session, {"": f"there is no server {name!r}"}, ""))
        if action == "disable":
            document = copy(self.site.editor.document())
            for entries in server_tables(document):
                if entries.get("name", "") == name:
                    entries["mode"] = "off"
            return self._update(request, session, document)
        if action in ("disconnect", "rebind") and not hasattr(gateway, action):
            return _send(request, 400, self.render_status(
                session, {"": f"this gateway cannot {action} a server"}, ""))
        if action == "disconnect":
            gateway.disconnect(name)
            done = f"server {name!r} disconnected; it connects again"
        elif action == "rebind":
            gateway.rebind(name)
            done = f"server {name!r} re-binding"
        else:
            return _send(request, 400, self.render_status(
                session, {"": f"unknown action {action!r}"}, ""))
        return _send(request, 200, self.render_status(session, {}, _lines([done])))

    def _update(self, request: Request, session: Session, document: TOMLDocument) -> bytes:
        editor = self.site.editor
        submission = check(Submission(document), editor.source, editor.base,
                           self.site.gateway.config)
        if submission.errors:
            return _send(request, 400, self.render_status(session, submission.errors, ""))
        return self.site.apply(request, session, submission, self.render_status)


class _Home(_Page):
    def get(self, request: Request, session: Session | None) -> bytes:
        return _redirect(request, b"/status")


class _Root(Resource):
    def getChild(self, path: bytes, request: Request) -> IResource:
        return notFound()


#: The largest request body the admin reads (a Servers form of hundreds of servers is
#: well under it); a larger one is answered 413 and its connection closed, unread.
MAX_BODY = 1024 * 1024

_TOO_LARGE = (b"HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
              b"Connection: close\r\nContent-Length: %d\r\n\r\n%s")


class _BoundedRequest(Request):
    """A request whose body is read only up to L{MAX_BODY} bytes (a declared length over it
    is refused before any of the body is read; a chunked one, once it passes it)."""

    _left = MAX_BODY
    _refused = False

    def gotLength(self, length: int | None) -> None:
        super().gotLength(None if length is not None and length > MAX_BODY else length)
        if length is not None and length > MAX_BODY:
            self._refuse()

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._left -= len(data)
        if self._left < 0:
            self._refuse()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if not self._refused:
            super().requestReceived(command, path, version)

    def _refuse(self) -> None:
        self._refused = True
        text = f"a request body over {MAX_BODY} bytes is refused\n".encode()
        transport = self.channel.transport if self.channel is not None else None
        if transport is not None:
            transport.write(_TOO_LARGE % (len(text), text))
            transport.loseConnection()


class AdminSite(Site):
    """The admin's site on C{gateway}: the pages, their sessions and the login throttle."""

    #: No "Starting factory" / "Stopping factory" lines: the gateway says where the admin listens.
    noisy = False

    def __init__(self, gateway: AdminGateway, clock: IReactorTime, run: Runner, *,
                 idle: float = 1800.0) -> None:
        self.gateway = gateway
        self.clock = clock
        self.editor = Editor(gateway)
        self.admin_sessions = Sessions(clock, idle)
        self.throttle = LoginThrottle(clock)
        self.password = PasswordCheck(run)
        # The operator's pages build on _Page: imported once this module is whole.
        from .operator import DialogsPage, LookupPage, QueuePage

        root = _Root()
        root.putChild(b"", _Home(self))
        for name, page in ((b"login", _Login), (b"logout", _Logout), (b"settings", _Settings),
                           (b"servers", _Servers), (b"status", _Status), (b"queue", QueuePage),
                           (b"lookup", LookupPage), (b"dialogs", DialogsPage)):
            root.putChild(name, page(self))
        #: Beats on the reactor while the site listens: /healthz reads its age.
        self.heartbeat = Heartbeat(clock, gateway, StoreWatch())
        root.putChild(b"metrics", Metrics(gateway))
        root.putChild(b"healthz", Health(gateway, self.heartbeat))
        #: The demo's pages the navigation links to: the Phone page, in demo mode.
        self.demo_links: tuple[tuple[str, str], ...] = ()
        from .phone import add_phone_page  # builds on _Page: imported once this module is whole
        add_phone_page(self, root)
        self.root = root
        super().__init__(root, requestFactory=_BoundedRequest)
        self.displayTracebacks = False

    def startFactory(self) -> None:
        super().startFactory()
        self.heartbeat.start()

    def stopFactory(self) -> None:
        self.heartbeat.stop()
        super().stopFactory()

    def log(self, request: http.Request) -> None:
        """No access log: the gateway's log is about messages and links."""

    def start_session(self, request: Request, session: Session | None = None) -> Session:
        """Give the browser C{session} (a new one by default) in the cookie."""
        session = session or self.admin_sessions.new()
        request.addCookie(COOKIE, session.token.encode(), path="/", httpOnly=True,
                          secure=request.isSecure(), sameSite="strict")
        return session

    def apply(self, request: Request, session: Session, submission: Submission,
              render: Callable[..., str]) -> bytes:
        """The Update of a checked submission, and the page that says how it went."""
        try:
            lines = self.editor.update(submission)
        except Refused as refused:
            return _send(request, 409, render(session, {"": str(refused)}, "", None, None))
        return _send(request, 200, render(session, {}, _lines(lines), None, None))


def admin_service(gateway: AdminGateway, reactor: Any) -> StreamServerEndpointService:
    """The admin's listener on C{[admin] listen}, named C{admin}; passwords checked on
    the reactor's thread pool."""
    run = partial(deferToThreadPool, reactor, reactor.getThreadPool())
    site = AdminSite(gateway, reactor, run)
    service = StreamServerEndpointService(
        serverFromString(reactor, gateway.config.admin.listen), site)
    service.setName("admin")
    # Like the AMP endpoint's: a listener that cannot listen stops start-up with one line.
    service._raiseSynchronously = True
    return service
