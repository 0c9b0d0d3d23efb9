"""
SMPP 3.4 numbers: command ids, command statuses, message states.

These are facts of the SMPP 3.4 specification (section 5.1.2 command ids,
5.1.3 command_status, 5.2.28 message_state); they live here so that no module
outside the codec adapter needs to know the PDU library's enums.
"""

from __future__ import annotations

COMMAND_IDS: dict[str, int] = {
    "generic_nack": 0x80000000,
    "bind_receiver": 0x00000001,
    "bind_receiver_resp": 0x80000001,
    "bind_transmitter": 0x00000002,
    "bind_transmitter_resp": 0x80000002,
    "query_sm": 0x00000003,
    "query_sm_resp": 0x80000003,
    "submit_sm": 0x00000004,
    "submit_sm_resp": 0x80000004,
    "deliver_sm": 0x00000005,
    "deliver_sm_resp": 0x80000005,
    "unbind": 0x00000006,
    "unbind_resp": 0x80000006,
    "replace_sm": 0x00000007,
    "replace_sm_resp": 0x80000007,
    "cancel_sm": 0x00000008,
    "cancel_sm_resp": 0x80000008,
    "bind_transceiver": 0x00000009,
    "bind_transceiver_resp": 0x80000009,
    "outbind": 0x0000000B,
    "enquire_link": 0x00000015,
    "enquire_link_resp": 0x80000015,
    "submit_multi": 0x00000021,
    "submit_multi_resp": 0x80000021,
    "alert_notification": 0x00000102,
    "data_sm": 0x00000103,
    "data_sm_resp": 0x80000103,
}
COMMAND_NAMES: dict[int, str] = {v: k for k, v in COMMAND_IDS.items()}

RESPONSE_BIT = 0x80000000

STATUSES: dict[str, int] = {
    "ESME_ROK": 0x00000000,
    "ESME_RINVMSGLEN": 0x00000001,
    "ESME_RINVCMDLEN": 0x00000002,
    "ESME_RINVCMDID": 0x00000003,
    "ESME_RINVBNDSTS": 0x00000004,
    "ESME_RALYBND": 0x00000005,
    "ESME_RINVPRTFLG": 0x00000006,
    "ESME_RINVREGDLVFLG": 0x00000007,
    "ESME_RSYSERR": 0x00000008,
    "ESME_RINVSRCADR": 0x0000000A,
    "ESME_RINVDSTADR": 0x0000000B,
    "ESME_RINVMSGID": 0x0000000C,
    "ESME_RBINDFAIL": 0x0000000D,
    "ESME_RINVPASWD": 0x0000000E,
    "ESME_RINVSYSID": 0x0000000F,
    "ESME_RCANCELFAIL": 0x00000011,
    "ESME_RREPLACEFAIL": 0x00000013,
    "ESME_RMSGQFUL": 0x00000014,
    "ESME_RINVSERTYP": 0x00000015,
    "ESME_RINVNUMDESTS": 0x00000033,
    "ESME_RINVDLNAME": 0x00000034,
    "ESME_RINVDESTFLAG": 0x00000040,
    "ESME_RINVSUBREP": 0x00000042,
    "ESME_RINVESMCLASS": 0x00000043,
    "ESME_RCNTSUBDL": 0x00000044,
    "ESME_RSUBMITFAIL": 0x00000045,
    "ESME_RINVSRCTON": 0x00000048,
    "ESME_RINVSRCNPI": 0x00000049,
    "ESME_RINVDSTTON": 0x00000050,
    "ESME_RINVDSTNPI": 0x00000051,
    "ESME_RINVSYSTYP": 0x00000053,
    "ESME_RINVREPFLAG": 0x00000054,
    "ESME_RINVNUMMSGS": 0x00000055,
    "ESME_RTHROTTLED": 0x00000058,
    "ESME_RINVSCHED": 0x00000061,
    "ESME_RINVEXPIRY": 0x00000062,
    "ESME_RINVDFTMSGID": 0x00000063,
    "ESME_RX_T_APPN": 0x00000064,
    "ESME_RX_P_APPN": 0x00000065,
    "ESME_RX_R_APPN": 0x00000066,
    "ESME_RQUERYFAIL": 0x00000067,
    "ESME_RINVOPTPARSTREAM": 0x000000C0,
    "ESME_ROPTPARNOTALLWD": 0x000000C1,
    "ESME_RINVPARLEN": 0x000000C2,
    "ESME_RMISSINGOPTPARAM": 0x000000C3,
    "ESME_RINVOPTPARAMVAL": 0x000000C4,
    "ESME_RDELIVERYFAILURE": 0x000000FE,
    "ESME_RUNKNOWNERR": 0x000000FF,
}
STATUS_NAMES: dict[int, str] = {v: k for k, v in STATUSES.items()}

ESME_ROK = STATUSES["ESME_ROK"]
ESME_RINVCMDLEN = STATUSES["ESME_RINVCMDLEN"]
ESME_RINVCMDID = STATUSES["ESME_RINVCMDID"]
ESME_RINVBNDSTS = STATUSES["ESME_RINVBNDSTS"]
ESME_RSYSERR = STATUSES["ESME_RSYSERR"]
ESME_RMSGQFUL = STATUSES["ESME_RMSGQFUL"]
ESME_RTHROTTLED = STATUSES["ESME_RTHROTTLED"]
ESME_RX_T_APPN = STATUSES["ESME_RX_T_APPN"]
ESME_RX_R_APPN = STATUSES["ESME_RX_R_APPN"]
ESME_RUNKNOWNERR = STATUSES["ESME_RUNKNOWNERR"]

#: Statuses after which the same PDU may succeed later: the queue retries these.
TEMPORARY_STATUSES = frozenset(
    {
        ESME_RSYSERR,
        ESME_RMSGQFUL,
        ESME_RTHROTTLED,
        ESME_RX_T_APPN,
    }
)
#: Statuses that ask the ESME to slow down: the whole link pauses.
THROTTLE_STATUSES = frozenset({ESME_RTHROTTLED, ESME_RMSGQFUL})

MESSAGE_STATES: dict[int, str] = {
    1: "ENROUTE",
    2: "DELIVERED",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIVERABLE",
    6: "ACCEPTED",
    7: "UNKNOWN",
    8: "REJECTED",
}


def status_name(status: int) -> str:
    """The specification's name of a command_status, or a description of its range."""
    name = STATUS_NAMES.get(status)
    if name is not None:
        return name
    if 0x400 <= status <= 0x4FF:
        return "vendor-specific error"
    return "reserved status"


def status_text(status: int) -> str:
    """A command_status as hex and name, for example ``0x0000000B ESME_RINVDSTADR``."""
    return f"0x{status:08X} {status_name(status)}"
