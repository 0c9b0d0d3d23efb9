"""
The command line of ``twistd smppgw``: options, and the service they build.

The configuration is read and checked while the options are parsed, so a bad
file stops twistd with one clear message (alone, not under twistd's usage
text) and a non-zero exit status before anything starts.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import IService, MultiService
from twisted.logger import Logger
from twisted.python import usage

from smppgw import __version__
from smppgw.config import Config, ConfigError, load_config
from smppgw.logfile import TurnBufferedLogObserver, install, observer_for
from smppgw.startup import StartupError

_log = Logger(namespace="smppgw")


class Options(usage.Options):
    """``twistd smppgw`` options."""

    optParameters = [
        ["config", "c", "etc/smppgw.toml", "The configuration file (TOML)."],
    ]
    optFlags = [
        ["demo", None, "Also run the built-in SMSC simulator for the configured servers."],
    ]

    config: Config

    def postOptions(self) -> None:
        try:
            self.config = load_config(self["config"])
        except ConfigError as e:
            # Not a UsageError, which twistd prints under its usage text: the
            # options are right, the file is wrong, and the line says why.
            raise SystemExit(str(e)) from None


class StartupFailed(Exception):
    """A start-up error (`StartupError`) of a gateway that twistd runs as a daemon.

    twistd's daemon tells the parent that waits for it only of an ``Exception``:
    a ``SystemExit`` would end the daemon and leave the parent waiting for good.
    The parent prints its message and exits 1.
    """


class _Logged(MultiService):
    """The service twistd runs: the gateway, and its log observer given to twistd's application."""

    def __init__(self, gateway: IService, observer: TurnBufferedLogObserver | None,
                 reactor: Any, daemon: bool = False) -> None:
        super().__init__()
        self.gateway = gateway
        self._observer = observer
        self._reactor = reactor
        self._daemon = daemon
        gateway.setServiceParent(self)

    def startService(self) -> None:
        _log.info("smppgw {version} starting", version=__version__)
        try:
            super().startService()
        except StartupError as error:
            if not self._daemon:
                raise
            raise StartupFailed(str(error)) from None

    def setServiceParent(self, parent: Any) -> None:
        super().setServiceParent(parent)
        # twistd starts logging after makeService, with the observer that its
        # application offers as an ILogObserver component, if any.
        if self._observer is not None and hasattr(parent, "setComponent"):
            install(parent, self._observer, self._reactor)


def makeService(options: Any) -> IService:
    """Build the gateway's MultiService; the global reactor is imported only here."""
    from twisted.internet import reactor

    from smppgw.service import build_gateway

    gateway = build_gateway(options.config, reactor, demo=bool(options["demo"]),
                            config_path=options["config"])
    # twistd's own options (--logfile, --nodaemon, ...) are the parent of ours.
    twistd = getattr(options, "parent", None)
    observer = observer_for(twistd, reactor)
    daemon = twistd is not None and not twistd.get("nodaemon", True)
    return _Logged(gateway, observer, reactor, daemon=daemon)
