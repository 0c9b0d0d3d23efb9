"""
Tests for L{smppgw.config.endpoints}: the AMP listener's description is read as Twisted
reads it, and what the config accepts Twisted builds.
"""

from __future__ import annotations

import os

from hypothesis import example, given, settings
from hypothesis import strategies as st
from twisted.internet import endpoints as twisted_endpoints
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase

from smppgw.config import ConfigError, endpoints, load_config, parse_config
from smppgw.config.endpoints import split_endpoint

FUZZ = settings(max_examples=int(os.environ.get("SMPPGW_FUZZ_EXAMPLES", "200")), deadline=None)

descriptions = st.text(st.sampled_from("ab:=\\/.7"), max_size=24)


def twisted_split(description: str) -> tuple[list[str], dict[str, str]]:
    """How Twisted's own (private) tokenizer splits C{description}."""
    args, options = twisted_endpoints._parse(description)  # type: ignore[attr-defined]
    return list(args), dict(options)


class GrammarTests(SynchronousTestCase):
    """split_endpoint against Twisted's tokenizer."""

    @FUZZ
    @given(descriptions)
    @example("unix:a\\:b\\=c:mode=600")
    @example("tcp:port=1:interface=\\:\\:1")
    @example("x:=y:a=b=c")
    def test_same_fields_as_twisted(self, description: str) -> None:
        """Any description splits into the fields Twisted gives, or is refused for a lone '\\' or an option given twice."""
        try:
            ours = split_endpoint(description)
        except ValueError as error:
            self.assertTrue("lone" in str(error) or "twice" in str(error), str(error))
            return
        self.assertEqual(ours, twisted_split(description))

    def test_resolved_paths_read_back(self) -> None:
        """A config folder with ':', '=' and '\\' in its name gives a socket path Twisted reads back whole."""
        folder = os.path.abspath(os.path.join(self.mktemp(), "a:b=c\\d"))
        os.makedirs(folder)
        path = os.path.join(folder, "smppgw.toml")
        with open(path, "w") as f:
            f.write('[amp]\nlisten = "unix:amp.sock:mode=600"\n[store]\npath = "gw.sqlite"\n')
        config = load_config(path)
        self.assertEqual(twisted_split(config.amp.listen),
                         (["unix", os.path.join(folder, "amp.sock")], {"mode": "600"}))
        self.assertEqual(config.store.path, os.path.join(folder, "gw.sqlite"))


class TwistedCheckTests(SynchronousTestCase):
    """serverFromString has the last word on tcp: and unix: listeners."""

    def test_accepted_descriptions_build(self) -> None:
        """Each accepted tcp: and unix: description builds a Twisted endpoint."""
        for listen in ("tcp:7777:interface=127.0.0.1", "tcp:port=0:interface=\\:\\:1:backlog=5",
                       "unix:/run/gw.sock:mode=700:lockfile=1"):
            accepted = parse_config(f'[amp]\nlisten = "{listen.replace(chr(92), chr(92) * 2)}"')
            twisted_endpoints.serverFromString(MemoryReactor(), accepted.amp.listen)

    def test_twisted_refusal_named(self) -> None:
        """A description Twisted refuses is a ConfigError naming the key, the value and Twisted's reason."""

        def refuse(reactor: object, description: str) -> None:
            raise ValueError("no such thing")

        self.patch(endpoints, "serverFromString", refuse)
        error = self.assertRaises(ConfigError, parse_config,
                                  '[amp]\nlisten = "tcp:7777:interface=127.0.0.1"')
        self.assertEqual(str(error), "<config>: amp.listen: 'tcp:7777:interface=127.0.0.1'"
                                     " is refused by Twisted: no such thing")
