"""The conversation's rules as pure functions: no actor, no store, no sockets."""

from __future__ import annotations

import pytest

from octim.domain.conversations.model import (
    ConversationMeta,
    Forbidden,
    InvalidBody,
    InvalidState,
    StoredMessage,
    event_key,
    pair_key,
)
from octim.domain.conversations.rules import close, mark_read, rate, recall, resolve
from octim.errors import NotFound
from octim.store import Delete, unpack


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
    assert set(by_db) == {"idx_shop_conversations", "events", "conversations",
                          "idx_open_conversations"}
    assert by_db["idx_shop_conversations"].key == pair_key("s1", "c1")
    assert by_db["events"].key == event_key(9_000, "c1", 3)
    assert unpack(by_db["events"].value)["data"] == {"by": "a1"}
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
