"""
The configuration document the admin edits, and the Update that applies it live and
saves it: the new configuration goes to C{gateway.apply_config}, then the file is
written atomically (comments and order kept), the previous one kept as C{FILE.bak}.
An Update is refused, with nothing applied, when the file was changed on disk since
the gateway or the admin read it.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from tomlkit.toml_document import TOMLDocument

from smppgw.config import Config, ConfigError, parse_config

from .configfile import (
    FileChanged,
    Fingerprint,
    document_from_config,
    fingerprint,
    read_document,
    same,
    write_atomically,
)
from .forms import Submission, revision

__all__ = ["AdminGateway", "Editor", "Refused"]


class AdminGateway(Protocol):
    """What the admin needs of the gateway."""

    #: The configuration in force.
    config: Config
    #: The file it was loaded from, None when it came from elsewhere.
    config_path: str | None
    #: The outbound queue, whose C{status()} gives one dict per server; None before start.
    outbound: Any

    def apply_config(self, new: Config) -> list[str]:
        """Apply C{new} live; one line per change."""

    def disconnect(self, name: str) -> object:
        """Drop the connection of server C{name} (it reconnects)."""

    def rebind(self, name: str) -> object:
        """Unbind server C{name} and bind it again."""


class Refused(Exception):
    """An Update cannot go on; the message says why and nothing was changed."""


class Editor:
    """
    The configuration document the admin edits: the gateway's file, re-read whenever
    the gateway's configuration changes (a reload), and the Update that writes it back.
    """

    def __init__(self, gateway: AdminGateway) -> None:
        self.gateway = gateway
        self._config: Config | None = None
        self._document: TOMLDocument | None = None
        self._seen: Fingerprint | None = None
        #: Why the file cannot be written, if it cannot: shown on every form.
        self.stale = ""

    @property
    def path(self) -> str | None:
        return getattr(self.gateway, "config_path", None)

    @property
    def base(self) -> str | None:
        return os.path.dirname(os.path.abspath(self.path)) if self.path else None

    @property
    def source(self) -> str:
        return self.path or "<admin>"

    def document(self) -> TOMLDocument:
        """The document of the configuration in force."""
        config = self.gateway.config
        if self._document is None or config is not self._config:
            self._load(config)
        assert self._document is not None
        return self._document

    def _load(self, config: Config) -> None:
        self._config, self.stale, self._seen = config, "", None
        path = self.path
        if path is None:
            self._document = document_from_config(config)
            return
        try:
            document, seen = read_document(path)
            on_disk = parse_config(document.as_string(), source=path, base=self.base)
        except ConfigError as error:
            self._document = document_from_config(config)
            self.stale = f"the configuration file cannot be used: {error}"
            return
        self._document, self._seen = document, seen
        if on_disk != config:
            self.stale = (f"{path} was changed on disk since the gateway loaded it; reload the"
                          " gateway (smppgw reload, or SIGHUP) before changing anything here")

    def revision(self) -> str:
        return revision(self.document())

    def refusal(self) -> str:
        """Why an Update would be refused now; "" when it may go ahead."""
        self.document()
        if self.stale:
            return self.stale
        if self.path is not None and self._seen is not None and not same(
                self._seen, fingerprint(self.path)):
            return (f"{self.path} was changed on disk since the admin read it; it was not"
                    " overwritten: reload the gateway (smppgw reload, or SIGHUP) to use it")
        return ""

    def update(self, submission: Submission) -> list[str]:
        """
        Apply the checked submission's configuration live, then save its document.

        @raise Refused: the file changed on disk; nothing was applied.
        @return: what changed, one line each, and where it was saved.
        """
        assert submission.config is not None
        refusal = self.refusal()
        if refusal:
            raise Refused(refusal)
        if not hasattr(self.gateway, "apply_config"):
            raise Refused("this gateway cannot apply a configuration live; nothing changed")
        changes = list(self.gateway.apply_config(submission.config))
        self._config, self._document = self.gateway.config, submission.document
        path = self.path
        if path is None:
            return [*changes, "applied; not saved: the gateway was not started from a file"]
        try:
            self._seen = write_atomically(path, submission.document.as_string(), self._seen)
        except FileChanged:
            self.stale = f"{path} was changed on disk while saving; it was not overwritten"
            raise Refused(f"applied, but not saved: {self.stale}") from None
        except OSError as error:
            raise Refused(f"applied, but not saved to {path}:"
                          f" {error.strerror or error}") from None
        return [*(changes or ["nothing changed"]), f"saved to {path} (the previous one is"
                                                   f" {os.path.basename(path)}.bak)"]
