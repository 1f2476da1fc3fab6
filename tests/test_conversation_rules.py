"""The conversation's rules as pure functions: no actor, no store, no sockets."""

from __future__ import annotations

import pytest

from octim.domain.conversations.model import (
    ConversationClosed,
    ConversationMeta,
    Forbidden,
    InvalidBody,
    InvalidState,
    StoredMessage,
    pair_key,
)
from octim.domain.conversations.rules import (
    ReopenExpired,
    TransferFacts,
    assign,
    attach_upload,
    bot_answer,
    bot_missed,
    close,
    handoff,
    mark_read,
    post,
    rate,
    recall,
    resolve,
    send,
    transfer,
    unassign,
)
from octim.errors import NotFound
from octim.store import Append, Delete, Op, unpack


def meta(**changes: object) -> ConversationMeta:
    base = ConversationMeta("c1", "s1", "b1", "assigned", created=1_000, updated=2_000,
                            last_seq=5, reads={"b1": 5, "a1": 3}, events=2, agent="a1")
    for name, value in changes.items():
        setattr(base, name, value)
    return base


def test_read_marks_only_go_forward_and_never_past_the_last_message() -> None:
    before = meta()
    assert mark_read(before, "a1", 2) is None  # behind what a1 has read: nothing
    out = mark_read(before, "a1", 99)
    assert out is not None and out.meta.reads == {"b1": 5, "a1": 5}
    assert before.reads == {"b1": 5, "a1": 3}  # the argument is untouched
    [(frame, exclude)] = out.frames
    assert frame["event"] == "read" and frame["data"] == {"user": "a1", "upto": 5}
    assert exclude is None
    [put] = out.ops
    assert unpack(put.value)["reads"] == {"b1": 5, "a1": 5}


def test_resolve_writes_state_event_meta_and_activity_in_one_outcome() -> None:
    before = meta()
    out = resolve(before, "a1", 9_000)
    after = out.meta
    assert (after.state, after.resolved_at, after.updated, after.last_agent) == \
        ("resolved", 9_000, 9_000, "a1")
    assert after.events == 3 and before.state == "assigned" and before.events == 2
    by_db = {op.db: op for op in out.ops}
    assert set(by_db) == {"idx_shop_conversations", "log", "conversations",
                          "idx_open_conversations"}
    assert by_db["idx_shop_conversations"].key == pair_key("s1", "c1")
    logged = by_db["log"]
    assert isinstance(logged, Append)  # numbered by the store when it is queued
    assert unpack(logged.value) == {"event": "resolved", "conversation": "c1", "shop": "s1",
                                    "data": {"by": "a1"}, "ts": 9_000}
    assert unpack(by_db["conversations"].value)["state"] == "resolved"
    assert [f["event"] for f, _ in out.frames] == ["resolved"]


@pytest.mark.parametrize("state", ["resolved", "closed"])
def test_only_an_open_conversation_resolves(state: str) -> None:
    with pytest.raises(InvalidState):
        resolve(meta(state=state), "a1", 9_000)


def test_rating_is_the_buyers_once_after_resolve_within_bounds() -> None:
    resolved = meta(state="resolved")
    out = rate(resolved, "buyer", 5, "很好", 9_000)
    assert out.meta.rating == {"score": 5, "comment": "很好", "ts": 9_000}
    assert resolved.rating is None
    assert [f["data"] for f, _ in out.frames] == [{"score": 5}]
    with pytest.raises(InvalidState, match="already rated"):
        rate(out.meta, "buyer", 4, "", 9_001)
    with pytest.raises(Forbidden):
        rate(resolved, "agent", 5, "", 9_000)
    with pytest.raises(InvalidState, match="once it is resolved"):
        rate(meta(), "buyer", 5, "", 9_000)
    for score, comment in ((0, ""), (6, ""), (3, "x" * 1001)):
        with pytest.raises(InvalidBody):
            rate(resolved, "buyer", score, comment, 9_000)


def test_recall_leaves_a_tombstone_for_the_author_within_the_window() -> None:
    said = StoredMessage(4, "m-4", "a1", "agent", "text", {"text": "oops"}, 8_000)
    out = recall(meta(), said, 4, "a1", 9_000, 120_000)
    tomb = unpack(next(op for op in out.ops if op.db == "messages").value)
    assert tomb["body"] == {} and tomb["recalled"] is True and tomb["recalled_at"] == 9_000
    assert tomb["seq"] == 4 and tomb["from"] == "a1" and tomb["ts"] == 8_000
    assert said.body == {"text": "oops"}  # the argument is untouched
    assert [f["data"] for f, _ in out.frames] == [{"seq": 4, "by": "a1"}]
    with pytest.raises(NotFound):
        recall(meta(), None, 4, "a1", 9_000, 120_000)
    with pytest.raises(Forbidden):
        recall(meta(), said, 4, "b1", 9_000, 120_000)
    with pytest.raises(InvalidState, match="window"):
        recall(meta(), said, 4, "a1", 8_000 + 120_001, 120_000)
    gone = StoredMessage.from_record(tomb)
    with pytest.raises(InvalidState, match="already"):
        recall(meta(), gone, 4, "a1", 9_000, 120_000)


@pytest.mark.parametrize("current", [True, False])
def test_close_frees_the_buyers_open_slot_only_when_it_is_this_conversation(
        current: bool) -> None:
    out = close(meta(), "inactive", 9_000, current=current)
    assert out.meta.state == "closed" and out.meta.closed_at == 9_000
    deleted = {(op.db, op.key) for op in out.ops if isinstance(op, Delete)}
    assert ("idx_open_conversations", b"c1") in deleted
    assert (("idx_customer_conversations", pair_key("b1", "s1")) in deleted) is current
    assert [f["data"] for f, _ in out.frames] == [{"reason": "inactive"}]


def dbs(ops: list[Op]) -> dict[str, Op]:
    return {op.db: op for op in ops}


def test_the_buyers_first_message_starts_routing_and_the_waiting_clock() -> None:
    fresh = meta(state="queued", agent=None, last_seq=1, reads={})
    out = send(fresh, "b1", "buyer", "text", {"text": "在吗 想问下尺码"}, "m1", "b1\x1fm1",
               9_000, 3_600_000, exclude="n1/7")
    after, said = out.meta, out.said
    assert said is not None and (said.seq, said.id, said.ts) == (2, "m1", 9_000)
    assert (after.last_seq, after.updated, after.waiting_since) == (2, 9_000, 9_000)
    assert after.routed and after.first_text == "在吗 想问下尺码" and out.route == "first_message"
    assert after.reads == {"b1": 2} and fresh.reads == {} and fresh.last_seq == 1
    assert after.preview == "在吗 想问下尺码" and not out.replied
    by_db = dbs(out.ops)
    assert unpack(by_db["client_ids"].value) == [2, 9_000]
    assert by_db["client_ids"].key == pair_key("c1", "b1\x1fm1")
    assert unpack(by_db["conversations"].value)["last_seq"] == 2
    # The event log has the message without its body.
    assert unpack(by_db["log"].value) == {
        "event": "message", "conversation": "c1", "shop": "s1", "ts": 9_000,
        "data": {"seq": 2, "role": "buyer", "from": "b1", "kind": "text"}}
    [(frame, exclude)] = out.frames
    assert frame["type"] == "msg" and frame["seq"] == 2 and exclude == "n1/7"
    # The second buyer message routes nothing and keeps the oldest unanswered time.
    again = send(after, "b1", "buyer", "text", {"text": "?"}, "m2", "b1\x1fm2", 9_500,
                 3_600_000)
    assert again.route == "" and again.meta.waiting_since == 9_000


def test_the_agents_first_reply_counts_first_response_and_stops_its_timer() -> None:
    waiting = meta(waiting_since=8_000, first_response=None, agent_replied=False)
    out = send(waiting, "a1", "agent", "text", {"text": "您好"}, "r1", "a1\x1fr1", 9_000,
               3_600_000)
    assert out.replied and out.meta.agent_replied and out.meta.first_response == 9_000
    assert out.meta.waiting_since is None and out.route == ""
    later = send(out.meta, "a1", "agent", "text", {"text": "还在吗"}, "r2", "a1\x1fr2", 9_900,
                 3_600_000)
    assert not later.replied and later.meta.first_response == 9_000
    # A colleague's reply is not the assigned agent's: no timer message for it.
    other = send(waiting, "a2", "shop_admin", "text", {"text": "我来"}, "r1", "a2\x1fr1", 9_000,
                 3_600_000)
    assert other.meta.agent_replied and not other.replied


def test_a_buyer_reopens_a_resolved_conversation_only_within_the_window() -> None:
    resolved = meta(state="resolved", resolved_at=10_000, routed=True, last_agent="a1")
    out = send(resolved, "b1", "buyer", "text", {"text": "还有个问题"}, "m9", "b1\x1fm9", 70_000,
               60_000)
    assert out.meta.state == "queued" and out.meta.agent is None and out.route == "reopened"
    assert [f["type"] == "event" and f["event"] for f, _ in out.frames] == ["reopened", False]
    assert unpack(dbs(out.ops)["idx_shop_conversations"].value) == "queued"
    with pytest.raises(ReopenExpired):
        send(resolved, "b1", "buyer", "text", {"text": "?"}, "m9", "b1\x1fm9", 70_001, 60_000)
    # Staff may still write into a resolved conversation without reopening it.
    note = send(resolved, "a1", "agent", "text", {"text": "补充"}, "n1", "a1\x1fn1", 99_000,
                60_000)
    assert note.meta.state == "resolved" and note.route == ""
    with pytest.raises(ConversationClosed):
        send(meta(state="closed"), "b1", "buyer", "text", {"text": "?"}, "m", "b1\x1fm", 1, 1)


def test_posts_are_system_or_bot_lines_into_an_open_conversation() -> None:
    out = post(meta(), "system", "订单已发货", 9_000)
    assert out.said is not None and out.said.kind == "system" and out.said.id == "system-6"
    assert post(meta(), "bot", "hi", 9_000).said.kind == "text"  # type: ignore[union-attr]
    for role, text in (("agent", "x"), ("system", " "), ("system", "x" * 5001)):
        with pytest.raises(InvalidBody):
            post(meta(), role, text, 9_000)
    with pytest.raises(ConversationClosed):
        post(meta(state="closed"), "system", "x", 9_000)


def test_assignment_hands_the_bots_handoff_to_the_agent_once() -> None:
    queued = meta(state="queued", agent=None, handoff={"reason": "angry"})
    out = assign(queued, "a2", "vip", "客服小美", 9_000)
    assert out is not None
    after = out.meta
    assert (after.state, after.agent, after.last_agent, after.assigned_at) == \
        ("assigned", "a2", "a2", 9_000)
    assert after.handoff is None and queued.handoff == {"reason": "angry"}
    [(frame, _)] = out.frames
    assert frame["data"] == {"agent": "a2", "rule": "vip", "agent_name": "客服小美",
                             "handoff": {"reason": "angry"}}
    assert dbs(out.ops)["idx_user_conversations"].key == pair_key("a2", "c1")
    # From one agent to another: a transferred event first.
    moved = assign(meta(), "a2", "overflow", None, 9_000)
    assert moved is not None
    assert [f["event"] for f, _ in moved.frames] == ["transferred", "assigned"]
    assert "agent_name" not in moved.frames[1][0]["data"]
    for state in ("resolved", "closed"):  # raced with the end of the conversation
        assert assign(meta(state=state), "a2", "vip", None, 9_000) is None


def test_unassignment_requeues_an_assigned_conversation_only() -> None:
    out = unassign(meta(), "agent_offline", 9_000)
    assert out is not None and out.meta.state == "queued" and out.meta.agent is None
    assert [f["data"] for f, _ in out.frames] == [{"agent": "a1", "reason": "agent_offline"}]
    assert unassign(meta(state="queued", agent=None), "agent_offline", 9_000) is None


FACTS = TransferFacts(may_enter=True, shop_exists=True, group_exists=True,
                      agent_shops=("s1", "s2"), current_in_old=True, open_in_new=False)


def test_a_transfer_to_another_shop_moves_its_indexes_and_goes_back_to_routing() -> None:
    out = transfer(meta(), "a1", "agent", "", "", "s2", "请二店处理", FACTS, 9_000)
    after = out.meta
    assert (after.shop, after.state, after.agent, out.route) == ("s2", "queued", None,
                                                                  "transfer")
    ops = {(op.db, op.key, isinstance(op, Delete)) for op in out.ops
           if not isinstance(op, Append)}
    assert ("idx_shop_conversations", pair_key("s1", "c1"), True) in ops
    assert ("idx_shop_conversations", pair_key("s2", "c1"), False) in ops
    assert ("idx_customer_conversations", pair_key("b1", "s1"), True) in ops
    assert ("idx_customer_conversations", pair_key("b1", "s2"), False) in ops
    assert out.said is not None and out.said.id == "transfer-6"
    assert out.said.body["transfer"]["from_shop"] == "s1"
    kept = transfer(meta(), "a1", "agent", "", "", "s2", "", TransferFacts(
        True, True, True, None, current_in_old=False, open_in_new=True), 9_000)
    assert not any(op.db == "idx_customer_conversations" for op in kept.ops)


@pytest.mark.parametrize(("role", "state", "to", "facts", "error"), [
    ("buyer", "assigned", ("a2", "", ""), FACTS, Forbidden),
    ("agent", "bot", ("a2", "", ""), FACTS, InvalidState),
    # A shop one may not enter and one that does not exist answer alike (no probing).
    ("agent", "assigned", ("", "", "s9"), TransferFacts(False, True, True, None, True, False),
     Forbidden),
    ("agent", "assigned", ("", "", "s9"), TransferFacts(True, False, True, None, True, False),
     Forbidden),
    ("agent", "assigned", ("", "g9", ""), TransferFacts(True, True, False, None, True, False),
     NotFound),
    ("agent", "assigned", ("a9", "", ""), TransferFacts(True, True, True, None, True, False),
     NotFound),
    ("agent", "assigned", ("a3", "", ""), TransferFacts(True, True, True, ("s7",), True, False),
     NotFound),
    ("agent", "assigned", ("", "", ""), FACTS, InvalidBody),
])
def test_transfer_refusals(role: str, state: str, to: tuple[str, str, str],
                           facts: TransferFacts, error: type[Exception]) -> None:
    with pytest.raises(error):
        transfer(meta(state=state), "a1", role, *to, "", facts, 9_000)


def test_uploads_attach_only_for_their_owner_and_kind() -> None:
    upload = {"id": "u1", "owner": "b1", "kind": "image", "mime": "image/png", "size": 9}
    body: dict[str, object] = {"upload": "u1"}
    [put] = attach_upload(upload, "u1", "b1", "image", "c1", body)
    assert body == {"upload": "u1", "mime": "image/png", "size": 9, "url": "/api/uploads/u1"}
    # An index row per conversation: the upload's record itself is never rewritten.
    assert (put.db, put.key) == ("idx_upload_conversations", pair_key("u1", "c1"))
    with pytest.raises(NotFound):
        attach_upload(upload, "u1", "b2", "image", "c1", {})
    with pytest.raises(NotFound):
        attach_upload(None, "u1", "b1", "image", "c1", {})
    with pytest.raises(InvalidBody):
        attach_upload(upload, "u1", "b1", "voice", "c1", {})


def test_the_bot_answers_misses_then_hands_over_with_the_transcript() -> None:
    bot = meta(state="bot", agent=None, waiting_since=8_000)
    answered = bot_answer(bot, {"text": "七天无理由", "kb": "k1"}, 9_000)
    assert answered.meta.waiting_since is None and answered.said is not None
    assert answered.said.role == "bot" and answered.meta.preview == "七天无理由"
    miss = bot_missed(bot, [{"id": "k2"}], 2, 9_000)
    assert miss is not None and miss.meta.bot_unanswered == 1 and bot.bot_unanswered == 0
    assert miss.said is not None and miss.said.body["suggestions"] == [{"id": "k2"}]
    assert bot_missed(miss.meta, [], 2, 9_100) is None  # the second miss hands over
    asked = StoredMessage(6, "m6", "b1", "buyer", "text", {"text": "转人工"}, 8_900)
    earlier = [StoredMessage(s, f"m{s}", "b1", "buyer", "text", {"text": str(s)},
                             8_000 + s).to_record() for s in (4, 5, 6)]
    out = handoff(miss.meta, "unanswered", [{"id": "k2"}], asked, earlier, 9_200)
    after = out.meta
    assert (after.state, after.routed, after.waiting_since, out.route) == \
        ("queued", True, 8_900, "bot_handoff")
    assert after.bot_unanswered == 2 and after.first_text == "转人工"
    assert after.handoff is not None
    transcript = after.handoff["transcript"]
    assert [m["seq"] for m in transcript] == [4, 5, 6] and transcript[-1]["body"] == {
        "text": "转人工"}  # the buyer's message as asked, not the stored copy
    assert [f["type"] == "event" and f["event"] for f, _ in out.frames] == ["handoff", False]
    assert out.said is not None and out.said.id == "handoff-7" and out.said.sender == "bot"
