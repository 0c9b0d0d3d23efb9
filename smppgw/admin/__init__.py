"""
The web admin: server-rendered pages on twisted.web to run the gateway from a browser.

By concern: L{auth} (the password, sessions, CSRF tokens, the login throttle),
L{configfile} (the TOML file read and written back with its comments, atomically),
L{forms} (the Settings and Servers forms: what they show, and the new configuration a
submission gives, checked as a file is), L{pages} (the HTML) and L{web} (the resources,
the Update that applies a configuration live and saves it, and the listener's service).
"""
