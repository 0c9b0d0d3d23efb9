"""Where the gateway's state lives: the store interface and its implementations."""
