"""
Delivery receipts: recognising them, reading them, and matching their message ids.

An SMSC writes a receipt as a deliver_sm (or data_sm) with the receipt bits of
esm_class set, the ``receipted_message_id`` / ``message_state`` TLVs, and the
text of SMPP 3.4 appendix B (``id:... sub:... dlvrd:... submit date:...
done date:... stat:... err:... text:...``).  SMSCs disagree on how they write
the id: the submit_sm_resp may say ``0000001A`` and the receipt ``26``, or
``1a``.  Ids are therefore compared through keys: `submit_key` for the id of
a submit_sm_resp, `receipt_keys` for the candidates a receipt's id may mean.

A part sent with ``registered_delivery`` waits for its receipt until a
deadline (`receipt_due`); a final receipt (`ends_wait`) ends the wait, and a
part still waiting at its deadline is reported with state ``UNKNOWN`` and
error `NO_RECEIPT`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from smppgw.smpp.constants import MESSAGE_STATES

#: esm_class bits 2-5 that mark an SMSC delivery receipt (0x04) or an
#: intermediate notification (0x20).
RECEIPT_BITS = 0x04 | 0x20
_TYPE_MASK = 0x3C

#: The receipt's "stat:" words, as SMPP 3.4 appendix B writes them, to message_state names.
STAT_WORDS = {
    "DELIVRD": "DELIVERED",
    "EXPIRED": "EXPIRED",
    "DELETED": "DELETED",
    "UNDELIV": "UNDELIVERABLE",
    "ACCEPTD": "ACCEPTED",
    "UNKNOWN": "UNKNOWN",
    "REJECTD": "REJECTED",
    "ENROUTE": "ENROUTE",
}

#: States that SMSCs send while a message is still on its way: ENROUTE, and
#: ACCEPTED, which store-and-forward SMSCs send when they have only taken the
#: message on.  After one of these a part still waits for its final receipt.
INTERMEDIATE_STATES = frozenset({"ENROUTE", "ACCEPTED"})
#: The esm_class message type of an intermediate notification, never the final receipt.
INTERMEDIATE_BIT = 0x20
#: The error text of the report of a part whose receipt did not come in time.
NO_RECEIPT = "no receipt"

_FIELD = re.compile(r"(id|stat|err)\s*:\s*(\S*)", re.IGNORECASE)


@dataclass(frozen=True)
class Receipt:
    """What a delivery receipt says."""

    message_id: str
    state: str  # a message_state name: DELIVERED, UNDELIVERABLE, ...
    error: str  # the "err:" code text, e.g. "000", or ""


def is_receipt(esm_class: int, tlvs: Mapping[str, object]) -> bool:
    """Whether a deliver_sm is a delivery receipt rather than a message."""
    return bool(esm_class & _TYPE_MASK & RECEIPT_BITS) or "receipted_message_id" in tlvs


def parse_receipt(text: str, tlvs: Mapping[str, object]) -> Receipt | None:
    """The receipt in a deliver_sm's TLVs and text; None when it names no message id."""
    fields = {m.group(1).lower(): m.group(2) for m in _FIELD.finditer(text)}
    raw_id = tlvs.get("receipted_message_id")
    if isinstance(raw_id, bytes) and raw_id:
        message_id = raw_id.decode("ascii", "replace")
    else:
        message_id = fields.get("id", "")
    if not message_id:
        return None
    state = ""
    stat = fields.get("stat", "").upper()
    if stat:
        state = STAT_WORDS.get(stat, "UNKNOWN")
    raw_state = tlvs.get("message_state")
    if isinstance(raw_state, int) and raw_state in MESSAGE_STATES:
        state = MESSAGE_STATES[raw_state]
    return Receipt(message_id, state or "UNKNOWN", fields.get("err", ""))


def ends_wait(receipt: Receipt, esm_class: int) -> bool:
    """Whether ``receipt`` is the part's final one, so that its deadline no longer holds."""
    intermediate = (esm_class & _TYPE_MASK) == INTERMEDIATE_BIT
    return not intermediate and receipt.state not in INTERMEDIATE_STATES


def receipt_due(registered_delivery: bool, timeout: float, accepted: float) -> float | None:
    """When a part accepted at ``accepted`` stops waiting for its receipt; None: it never waits."""
    return accepted + timeout if registered_delivery and timeout > 0 else None


def _strip(value: str) -> str:
    return value.strip().lower().lstrip("0") or "0"


def submit_key(message_id: str) -> str:
    """The key a submit_sm_resp's message_id is filed under."""
    return _strip(message_id)


def receipt_keys(message_id: str, id_format: str = "auto") -> list[str]:
    """The keys a receipt's id may match, most likely first.

    ``auto`` tries the id as written, then, for an all-digit id, its value in
    hex (an SMSC that answers in hex but writes receipts in decimal), then,
    for a hex id, its value in decimal.  ``hex`` and ``decimal`` say how the
    receipt writes the id when the submit_sm_resp used hex; ``string``
    compares the ids as text only.
    """
    text = message_id.strip()
    keys = [_strip(text)]
    if id_format == "string":
        return keys
    # ASCII only: str.isdigit() also accepts "²", which int() refuses; and no
    # conversion of ids longer than any SMSC writes (Python limits int/str).
    short = text.isascii() and len(text) <= 64
    is_decimal = short and text.isdecimal()
    is_hex = short and bool(text) and all(c in "0123456789abcdefABCDEF" for c in text)
    if id_format == "decimal" and is_decimal:
        return [_strip(format(int(text), "x"))]
    if id_format == "hex":
        return keys
    if is_decimal:
        keys.append(_strip(format(int(text), "x")))
    if is_hex and not is_decimal:
        keys.append(_strip(str(int(text, 16))))
    return list(dict.fromkeys(keys))
