"""smppgw: an SMPP 3.4 gateway (ESME) for instant-messaging servers."""

__version__ = "0.1.0"
