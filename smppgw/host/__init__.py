"""The host side: the AMP contract, its protocol, the registry of hosts and a client."""
