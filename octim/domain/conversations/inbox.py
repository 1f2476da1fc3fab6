"""A user's inbox: the conversations they take part in, as their lists show them.

A read of the durable state (LMDB reads are snapshots and never wait for a writer),
so it needs no actor: the conversations' meta records through the user's index, with
the names a list shows (shop, agent, buyer) and, for staff, what the workbench sorts
and filters by. The gateway answers an ``inbox`` frame with it.
"""

from __future__ import annotations

from typing import Any

from octim.domain.channels import report_channel
from octim.domain.conversations.model import (
    CLOSED,
    RESOLVED,
    STAFF_ROLES,
    ConversationMeta,
    pair_key,
)


def agent_keeps(meta: ConversationMeta, agent: str) -> bool:
    """An agent's inbox: what is assigned to them now, and what they handled last
    that has since ended; not what was transferred (or reassigned) away from them."""
    if agent in meta.helpers:  # invited to assist, until let go
        return True
    if meta.agent:
        return meta.agent == agent
    return meta.last_agent == agent and meta.state in (RESOLVED, CLOSED)


def inbox(store: Any, user: str, role: str, shops: tuple[str, ...]) -> list[dict[str, Any]]:
    """The inbox entries of ``user``, the most recently active first."""
    staff = role in STAFF_ROLES
    prefix = pair_key(user, "")
    entries = []
    shop_names: dict[str, str] = {}
    agent_names: dict[str, str] = {}
    channel_records: dict[str, Any] = {}
    for key, _ in store.scan("idx_user_conversations", prefix, prefix[:-1] + b"\x01"):
        conversation = key[len(prefix):].decode()
        meta = ConversationMeta.load(store, conversation)
        # The index remembers everyone who ever took part; a list shows only
        # what the caller may see now (a transfer moves a conversation away).
        if meta is None or not meta.visible_to(user, role, shops):
            continue
        shop = meta.shop
        if role == "agent" and not agent_keeps(meta, user):
            continue
        if shop not in shop_names:
            shop_names[shop] = (store.get("shops", shop.encode()) or {}).get("name", shop)
        read = meta.reads.get(user, 0)
        # how far the other side has read: the buyer for staff, any staff for the buyer
        peer_read = meta.reads.get(meta.buyer, 0) if staff else max(
            [upto for reader, upto in meta.reads.items() if reader != user], default=0)
        # The buyer's unread leaves out the private notes they never get.
        hidden = 0 if staff else sum(1 for seq in meta.notes if seq > read)
        entry = {"conversation": conversation, "shop": shop, "shop_name": shop_names[shop],
                 "state": meta.state, "last_seq": meta.last_seq, "read": read,
                 "unread": max(0, meta.last_seq - read - hidden), "peer_read": peer_read,
                 "updated": meta.updated, "created": meta.created, "agent": meta.agent,
                 "preview": meta.preview, "rated": bool(meta.rating)}
        agent = meta.agent or meta.last_agent
        if agent:
            if agent not in agent_names:
                agent_names[agent] = (store.get("agents", agent.encode()) or {}).get(
                    "name", agent)
            entry["agent_name"] = agent_names[agent]
            entry["last_agent"] = agent
        if staff:  # what the workbench sorts and filters by
            entry["helpers"] = list(meta.helpers)
            buyer = meta.buyer
            profile = store.get("customers", buyer.encode()) or {}
            private = store.get("shop_customers", pair_key(shop, buyer)) or {}
            entry.update(buyer=buyer, buyer_name=profile.get("nickname") or buyer,
                         level=meta.level or profile.get("level") or 0,
                         waiting_since=meta.waiting_since, tags=list(private.get("tags", [])))
            # Where the buyer is (docs/channels.md): the channel it opened on and, for an
            # api channel, the one replies go out through now, with its kinds.
            via = meta.reply_via or meta.context.get("via")
            entry["channel"] = meta.context.get("channel") or "web"
            if via:
                if via not in channel_records:
                    channel_records[via] = store.get("channels", via.encode())
                record = channel_records[via]
                entry["via"] = {"id": via, "name": record["name"] if record else via,
                                "channel": report_channel(record) if record else "api",
                                "kinds": list(record["kinds"]) if record else [],
                                "convert": bool(record and record.get("convert")),
                                "replies": bool(meta.reply_via)}
        entries.append(entry)
    entries.sort(key=lambda e: e["updated"], reverse=True)
    return entries
