"""The benchmark scripts stay importable (they are not run by the tests, but must not rot)."""

from __future__ import annotations

import glob
import importlib.util
import os
import sys

from twisted.trial.unittest import SynchronousTestCase

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")


class BenchScriptTests(SynchronousTestCase):
    def test_every_script_imports(self) -> None:
        """Every bench/*.py module loads without error (their main() runs only as a script)."""
        sys.path.insert(0, BENCH)
        self.addCleanup(sys.path.remove, BENCH)
        # _peer_smpplib.py runs in a virtualenv of its own, with smpplib.
        scripts = sorted(p for p in glob.glob(os.path.join(BENCH, "*.py"))
                         if not p.endswith("_peer_smpplib.py"))
        self.assertGreater(len(scripts), 5)
        for path in scripts:
            name = "bench_" + os.path.basename(path)[:-3].lstrip("_")
            spec = importlib.util.spec_from_file_location(name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # dataclasses look their module up there
            self.addCleanup(sys.modules.pop, name, None)
            spec.loader.exec_module(module)
