"""SMPP 3.4 on the wire: PDUs, the session, the protocol and the reconnecting link."""
