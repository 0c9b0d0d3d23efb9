"""smppgw: an SMPP 3.4 gateway (ESME) for instant-messaging servers."""
