"""Test parts shipped with the gateway: the SMSC simulator, the demo, a gateway in a child process."""
