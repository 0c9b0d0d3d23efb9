"""
The command line of ``twistd smppgw``: options, and the service they build.

The configuration is read and checked while the options are parsed, so a bad
file stops twistd with one clear message (alone, not under twistd's usage
text) and a non-zero exit status before anything starts.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import IService
from twisted.python import usage

from .config import Config, ConfigError, load_config


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


def makeService(options: Any) -> IService:
    """Build the gateway's MultiService; the global reactor is imported only here."""
    from twisted.internet import reactor

    from .service import build_gateway

    return build_gateway(options.config, reactor, demo=bool(options["demo"]))
