"""StoredMessage and ConversationMeta: the one encode and decode of each record (no sockets)."""

from __future__ import annotations

from octim.domain.conversations.model import (
    ConversationMeta,
    StoredMessage,
    message_key,
    msg_frame,
)
from octim.store import unpack


def test_a_message_round_trips_through_its_record_and_store_operation() -> None:
    said = StoredMessage(7, "m-7", "buyer-1", "buyer", "text", {"text": "有L码吗"}, 1_700_000)
    record = said.to_record()
    assert record == {"seq": 7, "id": "m-7", "from": "buyer-1", "role": "buyer",
                      "kind": "text", "body": {"text": "有L码吗"}, "ts": 1_700_000}
    assert StoredMessage.from_record(record) == said
    put = said.put("c1")
    assert (put.db, put.key) == ("messages", message_key("c1", 7))
    assert StoredMessage.from_record(unpack(put.value)) == said
    assert said.frame("c1") == {"type": "msg", "conversation": "c1", **record}


def test_a_tombstone_keeps_seq_author_and_time_and_says_recalled() -> None:
    said = StoredMessage(3, "m-3", "agent-1", "agent", "text", {"text": "oops"}, 10)
    said.body, said.recalled_at = {}, 20
    record = said.to_record()
    assert record["recalled"] is True and record["recalled_at"] == 20 and record["body"] == {}
    assert StoredMessage.from_record(record) == said
    frame = msg_frame("c1", record)
    assert frame["recalled"] is True and frame["seq"] == 3 and frame["from"] == "agent-1"
    assert "recalled" not in StoredMessage(4, "m-4", "a", "agent", "text", {}, 1).to_record()


def test_conversation_meta_round_trips_and_reads_records_of_the_dict_era() -> None:
    # What the shop actor wrote before the record was typed: only some keys present.
    old = {"id": "c1", "shop": "s1", "buyer": "b1", "state": "queued", "level": 2,
           "context": {"entry": "product"}, "created": 5, "updated": 6, "last_seq": 1,
           "reads": {"b1": 1}, "events": 2}
    meta = ConversationMeta.from_record(old)
    assert (meta.agent, meta.rating, meta.first_text, meta.routed) == (None, None, "", False)
    meta.agent, meta.waiting_since = "a1", 6
    put = meta.put()
    assert (put.db, put.key) == ("conversations", b"c1")
    stored = unpack(put.value)
    assert stored == meta.to_record() and stored["agent"] == "a1"
    assert {k: stored[k] for k in old} == old  # readers of the dict keep their keys
    assert ConversationMeta.from_record(stored) == meta
