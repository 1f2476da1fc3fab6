"""Uploads' records: who sent which bytes, and which conversations may read them.

An upload's record (database ``uploads``) is written once, when the bytes are
stored, under a new random id, and never changed: nothing else can write it, so it
needs no owning actor. Sending it in a conversation is that conversation's write: its
actor adds (upload, conversation) to ``idx_upload_conversations`` in the message's own
commit. An index row per conversation, not a list in the record, so two conversations
attaching the same upload at once cannot lose one another's write.
"""

from __future__ import annotations

from typing import Any

from octim.domain.conversations.model import (
    STAFF_ROLES,
    ConversationMeta,
    new_upload_id,
    pair_key,
)
from octim.store import Put, pack

INDEX = "idx_upload_conversations"
TICKET_INDEX = "idx_upload_tickets"  # written by the ticket desk with the ticket's commit


async def create(store: Any, owner: str, kind: str, mime: str, size: int, digest: str,
                 now: int, name: str | None = None) -> dict[str, Any]:
    """Record a stored blob as a new upload of ``owner`` and return the record."""
    upload_id = new_upload_id()
    record = {"id": upload_id, "owner": owner, "kind": kind, "mime": mime, "size": size,
              "sha256": digest, "created": now}
    if name is not None:
        record["name"] = name
    await store.write((Put("uploads", upload_id.encode(), pack(record)),))
    return record


def attached(upload: str, conversation: str) -> Put:
    """The store operation that lets ``conversation``'s participants read ``upload``."""
    return Put(INDEX, pair_key(upload, conversation), pack(1))


def conversations_of(store: Any, record: dict[str, Any]) -> list[str]:
    """The conversations an upload was sent in (records written before the index kept
    them in a ``conversations`` list)."""
    prefix = pair_key(record["id"], "")
    found = [key[len(prefix):].decode()
             for key, _ in store.scan(INDEX, prefix, prefix[:-1] + b"\x01")]
    return [*record.get("conversations", ()), *found]


def may_read(store: Any, record: dict[str, Any], user: str, role: str,
             shops: tuple[str, ...]) -> bool:
    """The uploader, and whoever takes part now in a conversation it was sent in."""
    if record["owner"] == user:
        return True
    for conversation in conversations_of(store, record):
        meta = ConversationMeta.load(store, conversation)
        if meta is not None and meta.visible_to(user, role, shops):
            return True
    prefix = pair_key(record["id"], "")
    for key, _ in store.scan(TICKET_INDEX, prefix, prefix[:-1] + b"\x01"):
        ticket = store.get("tickets", key[len(prefix):])
        if ticket is None:
            continue
        if role == "buyer" and ticket.get("requester") == user:
            return True
        if role in STAFF_ROLES and (ticket["shop"] in shops or "*" in shops):
            return True
    return False
