"""The SMSC simulator's parts, one concept each; use them from `smppgw.testing.simulator`.

`faults` holds the knobs a test flips and what the simulator records,
`session` one ESME's connection (its bind states as a table), `server` the
factory that accepts binds and submits, `deliveries` what it sends the ESME
(a phone's messages, delivery receipts), `command` the command line.
"""
