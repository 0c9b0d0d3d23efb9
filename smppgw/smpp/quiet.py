"""
smpp.pdu's stray output kept off the gateway's stdout.

What it buys: the library prints the last character of every time string it
parses (``smpp.pdu.smpp_time.parse``), which the library path does for any
PDU carrying a schedule_delivery_time or validity_period.  Under ``twistd
-n`` stdout is the gateway's log: without this, each such PDU would add a
stray line ("R", "+") to it.

What it costs: `contextlib.redirect_stdout` swaps ``sys.stdout`` for the whole
process while the library runs (about 2 us a PDU, on a path that takes
60-100 us and that the hot PDUs do not take).  The reactor's thread is the only one that runs the codec, and
nothing else of the gateway writes to stdout from another thread meanwhile.
Only the library path (`smppgw.smpp.libpath`) uses it; the lean path never
calls the library.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Whatever is printed to stdout inside the block is dropped."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield
