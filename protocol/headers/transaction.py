"""Transaction headers (reference §3.2.6, §7.6)."""

from __future__ import annotations

import attrs

from protocol.convert import Int32


@attrs.frozen(kw_only=True)
class EndTransactionRequestHeader:
    """``commit_or_rollback`` takes the sysFlag transaction values: 0 unknown, 8 commit, 12 rollback."""

    producer_group: str
    tran_state_table_offset: int
    commit_log_offset: int
    commit_or_rollback: Int32
    msg_id: str
    from_transaction_check: bool | None = None
    transaction_id: str | None = None
    bname: str | None = None


@attrs.frozen(kw_only=True)
class CheckTransactionStateRequestHeader:
    """Broker to client (code 39), sent oneway with the half message as body."""

    tran_state_table_offset: int
    commit_log_offset: int
    msg_id: str | None = None
    transaction_id: str | None = None
    offset_msg_id: str | None = None
    bname: str | None = None


@attrs.frozen(kw_only=True)
class ResumeCheckHalfMessageRequestHeader:
    msg_id: str | None = None
