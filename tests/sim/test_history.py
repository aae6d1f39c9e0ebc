"""The history checker on hand-made histories: each property fails for its defect."""

from __future__ import annotations

import pytest
import trio

from protocol.msgid import offset_msg_id_prefix
from tests.sim.history import History, Violation

BROKER = "10.0.0.3:10911"


def msg_id(offset: int) -> str:
    return offset_msg_id_prefix(BROKER).hex().upper() + f"{offset:016X}"


async def at(t: float) -> None:
    await trio.sleep_until(t)


def sent(h: History, key: str, offset: int, **kw: object) -> None:
    s = h.send_started(key, "T", 100, **kw)
    h.send_finished(s, "SEND_OK", msg_id(offset), 0, offset // 1000)


async def test_an_acknowledged_message_never_delivered_is_lost(autojump_clock):
    h = History()
    h.subscriptions["g"] = {"T"}
    sent(h, "a", 0)
    sent(h, "b", 1000)
    h.delivered("a", "g", "c1")
    with pytest.raises(Violation, match="lost: b"):
        h.check()
    h.delivered("b", "g", "c1")
    h.check()


async def test_a_power_loss_excuses_only_what_was_not_flushed(autojump_clock):
    for sync_flush, excused in ((False, {"late"}), (True, set())):
        h = History(sync_flush=sync_flush)
        h.subscriptions["g"] = {"T"}
        sent(h, "early", 0)
        sent(h, "late", 50_000)
        await at(trio.current_time() + 1)
        h.power_loss(BROKER, flushed=20_000)
        lost = {s.key for _, s in h.lost()}
        assert lost == {"early", "late"} - excused
        # the unacknowledged never count
        h.send_started("never-acked", "T", 10)
        assert {s.key for _, s in h.lost()} == lost


async def test_two_owners_outside_a_rebalance_window(autojump_clock):
    h = History(rebalance_window=10)
    h.membership_changed("c2 joins")  # t=0, window until 10
    h.delivered("a", "g", "c1")
    await at(5)
    h.delivered("a", "g", "c2")  # redelivery inside the window: fine
    h.check()
    await at(50)
    h.delivered("b", "g", "c1")
    await at(51)
    h.delivered("b", "g", "c2")
    with pytest.raises(Violation, match="two owners: b"):
        h.check()


async def test_orderly_keys_must_arrive_in_send_order(autojump_clock):
    h = History(rebalance_window=10)
    h.orderly_groups.add("g")
    for i in range(4):
        sent(h, f"m{i}", i * 1000, group_key="k", seq=i)
    await at(100)
    for key in ("m0", "m2", "m1", "m3"):
        h.delivered(key, "g", "c1")
    with pytest.raises(Violation, match=r"seq 2 delivered .* before \[1\]"):
        h.check()


async def test_orderly_rewind_only_inside_a_window(autojump_clock):
    h = History(rebalance_window=10)
    h.orderly_groups.add("g")
    for i in range(3):
        sent(h, f"m{i}", i * 1000, group_key="k", seq=i)
    await at(100)
    for key in ("m0", "m1", "m2", "m1", "m2"):
        h.delivered(key, "g", "c1")
    with pytest.raises(Violation, match="seq 1 again"):
        h.check()
    h.membership_changed("c1 restarts")  # the same rewind inside a window is a redelivery
    h.deliveries[3].at = h.deliveries[4].at = trio.current_time() + 1
    h.check()


async def test_a_delayed_message_must_not_come_early(autojump_clock):
    h = History()
    sent(h, "d", 0, delay_ms=5000)
    await at(4.9)
    h.delivered("d", "g", "c1")
    with pytest.raises(Violation, match="early: d"):
        h.check()
    h.deliveries[0].at = 5.0
    h.check()


async def test_after_a_power_loss_only_reused_queue_offsets_are_excused(autojump_clock):
    h = History(sync_flush=True)
    h.subscriptions["g"] = {"T"}
    for i in range(3):  # queue offsets 0..2, consumed and committed
        sent(h, f"old{i}", i * 1000)
        h.delivered(f"old{i}", "g", "c1", queue=(BROKER, 0), queue_offset=i)
    await at(10)
    h.power_loss(BROKER, flushed=1000)  # the queue recovers to offset 1
    await at(20)
    for key, offset in (("reused", 1000), ("fresh", 3000)):
        s = h.send_started(key, "T", 100)
        h.send_finished(s, "SEND_OK", msg_id(offset), 0, offset // 1000)
    # "reused" took queue offset 1 below the group's committed 3: skipped, as RocketMQ does
    assert {s.key for _, s in h.lost()} == {"fresh"}
    assert h.summary()["skipped_after_power_loss"] == 1


async def test_a_message_stored_while_slave_is_a_violation(autojump_clock):
    h = History(epoch_ms=1000)
    h.role_changed(BROKER, "SYNC_MASTER")
    await at(10)
    h.role_changed(BROKER, "SLAVE")
    await at(20)
    h.role_changed(BROKER, "SYNC_MASTER")
    # stamped within the master's terms (and the millisecond of a switch): fine
    for stamp in (5_000, 10_000, 20_000, 25_000):
        h.delivered("ok", "g", "c1", stored=(BROKER, 1000 + stamp))
    h.check()
    h.delivered("bad", "g", "c1", stored=(BROKER, 1000 + 15_000))
    with pytest.raises(Violation, match="written while SLAVE: bad"):
        h.check()


async def test_two_acks_at_one_offset_of_a_group_are_a_violation(autojump_clock):
    h = History()
    other = "10.0.0.4:10911"
    h.groups.update({BROKER: "broker-a", other: "broker-a"})
    sent(h, "a", 0)
    sent(h, "b", 2000)
    h.check()
    # another master of the group (a new epoch) acknowledges a message at the same offset
    s = h.send_started("c", "T", 100)
    h.send_finished(s, "SEND_OK", offset_msg_id_prefix(other).hex().upper() + f"{2000:016X}", 0, 2)
    with pytest.raises(Violation, match=r"acknowledged twice at offset 2000: b by .*, c by"):
        h.check()


async def test_an_unanswered_request_is_a_violation_where_answers_are_expected(autojump_clock):
    h = History()
    h.request_unanswered(BROKER, 11, "RemotingTimeoutError: no reply")
    h.check()  # a scenario with faults: allowed
    h.expect_answers = True
    with pytest.raises(Violation, match="unanswered: request 11"):
        h.check()


async def test_replication_excuses_no_loss_after_a_power_loss(autojump_clock):
    h = History(replicated=True)
    h.subscriptions["g"] = {"T"}
    sent(h, "a", 0)
    await at(1)
    h.power_loss(BROKER, flushed=0)  # nothing flushed on the master: a slave has it
    with pytest.raises(Violation, match="lost: a"):
        h.check()


async def test_a_slot_reused_after_a_truncation_is_counted_not_failed(autojump_clock):
    old, new = BROKER, "10.0.0.4:10911"
    for replicated in (True, False):
        h = History(replicated=replicated)
        h.groups.update({old: "broker-a", new: "broker-a"})
        h.subscriptions["g"] = {"T"}
        # read on the old master before a slave had it, never acknowledged, later cut
        u = h.send_started("u", "T", 100)
        h.send_finished(u, "FLUSH_SLAVE_TIMEOUT", msg_id(5000), 0, 5)
        h.delivered("u", "g", "c1", queue=(old, 0), queue_offset=5)
        # the new master's acknowledged message at the same queue offset: the group is past it
        a = h.send_started("a", "T", 100)
        h.send_finished(
            a, "SEND_OK", offset_msg_id_prefix(new).hex().upper() + f"{5000:016X}", 0, 5
        )
        if replicated:
            h.check()
            assert h.summary()["skipped_after_truncation"] == 1
        else:
            with pytest.raises(Violation, match="lost: a"):
                h.check()
