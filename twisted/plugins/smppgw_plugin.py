"""The twistd plugin: ``twistd smppgw [--config etc/smppgw.toml] [--demo]``."""

from twisted.application.service import ServiceMaker

smppgw = ServiceMaker(
    "smppgw",
    "smppgw.tap",
    "An SMPP 3.4 gateway (ESME) between IM servers and SMSCs.",
    "smppgw",
)
