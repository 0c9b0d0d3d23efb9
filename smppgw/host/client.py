"""
The command line's former name: ``python -m smppgw.host.client ARGS`` runs ``smppgw ARGS``.

The commands, and where they find the gateway, are those of `smppgw.cli`.
"""

from __future__ import annotations

import sys

from smppgw.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
