"""``python -m smppgw.cli ARGS`` runs ``smppgw ARGS``."""

from __future__ import annotations

import sys

from smppgw.cli import main

sys.exit(main())
