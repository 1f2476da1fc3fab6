"""The bot's turns in a conversation: answer, suggest, hand over, assist the agent.

A mixin of :class:`~octim.domain.conversations.actor.ConversationActor`: it runs on
the conversation's own task: it asks the knowledge base, and the turn's change is a
pure rule (:func:`~.rules.bot_answer`, :func:`~.rules.bot_missed`,
:func:`~.rules.handoff`) the actor adopts. The decisions (modes, hand-off words) are
in :mod:`octim.domain.bot`, the matching in :mod:`octim.domain.kb`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from octim.actors import Message, Reply
from octim.domain.bot import TRANSCRIPT, BotSettings, handoff_reason
from octim.domain.context import EngineContext
from octim.domain.conversations import rules
from octim.domain.conversations.model import ConversationMeta, StoredMessage
from octim.domain.kb.knowledge import ID as KB_ID
from octim.domain.kb.knowledge import KIND as KB
from octim.domain.kb.knowledge import AskKb, AssistKb, Propose, RecordUnanswered
from octim.domain.routing.messages import RouteConversation


def text_of(record: dict[str, Any]) -> str:
    """A stored text message's text ("" for other kinds and recalled ones)."""
    body = record.get("body")
    if record.get("kind") != "text" or not isinstance(body, dict):
        return ""
    text = body.get("text")
    return text if isinstance(text, str) else ""


class BotTurns:
    """See the module docstring."""

    meta: ConversationMeta
    context: EngineContext

    if TYPE_CHECKING:
        @property
        def id(self) -> str: ...
        async def _adopt(self, out: rules.Outcome, done: Reply[Any] | None = None,
                         also: tuple[str, ...] = ()) -> None: ...
        def _route(self, reason: str) -> RouteConversation: ...
        async def _dispatcher(self, message: Message) -> None: ...

    async def _kb(self, message: Message) -> Any:
        assert self.context.directory is not None
        return await self.context.directory.ref(KB, KB_ID).ask(message)

    async def _kb_tell(self, message: Message) -> None:
        assert self.context.directory is not None
        await self.context.directory.ref(KB, KB_ID).tell(message)

    async def _bot_turn(self, asked: StoredMessage) -> None:
        """Answer from the knowledge base, offer suggestions, or hand over."""
        text, shop = asked.body["text"], self.meta.shop
        shop_record = self.context.store.get("shops", shop.encode()) or {}
        settings = BotSettings.from_record(shop_record.get("bot"))
        reason = handoff_reason(settings, text)
        result: dict[str, Any] = {"suggestions": []}
        if reason is None:
            picked = self._picked(asked)
            if picked is not None:  # a choice the bot offered: a labelled example
                await self._kb_tell(Propose(shop, picked[1], picked[0], None, "click"))
            result = await self._kb(AskKb(text, shop, pick=picked[0] if picked else None))
            now = self.context.now_ms()
            if result["answered"]:
                answer = {"text": result["answer"], "kb": result["id"]}
                if result["suggestions"]:  # "you may also ask" under the answer
                    answer["related"] = result["suggestions"]
                await self._adopt(rules.bot_answer(self.meta, answer, now))
                return
            missed = rules.bot_missed(self.meta, result["suggestions"], settings.handoff_after,
                                      now)
            if missed is not None:
                await self._kb_tell(RecordUnanswered(text, shop, False))
                await self._adopt(missed)
                return
            reason = "unanswered"
        await self._kb_tell(RecordUnanswered(text, shop, True))
        earlier = self.context.store.scan_scope("messages", self.id,
                                                after=max(0, asked.seq - TRANSCRIPT))
        await self._adopt(rules.handoff(self.meta, reason, result["suggestions"], asked,
                                        [record for _, record in earlier],
                                        self.context.now_ms()))
        await self._dispatcher(self._route("bot_handoff"))

    def _recent(self, before: int, count: int = 12) -> list[dict[str, Any]]:
        """The stored records just before seq ``before``, oldest first."""
        earlier = self.context.store.scan_scope("messages", self.id,
                                                after=max(0, before - count - 1))
        return [record for seq, record in earlier if seq < before]

    def _picked(self, asked: StoredMessage) -> tuple[str, str] | None:
        """``(entry, the buyer's question)`` when ``asked`` is one of the choices the bot
        offered under its last message (您是不是想问, or 猜你想问 under an answer)."""
        records = self._recent(asked.seq)
        bot = next((r for r in reversed(records) if r["role"] == "bot"), None)
        if bot is None or not isinstance(bot.get("body"), dict):
            return None
        offers = bot["body"].get("suggestions") or bot["body"].get("related") or []
        text = asked.body["text"].strip()
        chosen = next((o["id"] for o in offers if isinstance(o, dict)
                       and o.get("question") == text), None)
        question = next((text_of(r) for r in reversed(records)
                         if r["seq"] < bot["seq"] and r["role"] == "buyer" and text_of(r)),
                        None)
        return (chosen, question) if chosen and question and question != text else None

    async def _learn_from_handoff(self) -> None:
        """After an agent resolves a conversation the bot handed over: the buyer's
        question and the agent's first reply become a proposal (a similar question of the
        entry whose answer the agent sent, or a new entry) for the shop admin."""
        records = self._recent(self.meta.last_seq + 1, 200)
        notice = next((r for r in reversed(records) if r["role"] == "system"
                       and isinstance(r["body"], dict) and r["body"].get("handoff")), None)
        if notice is None:
            return
        shop_record = self.context.store.get("shops", self.meta.shop.encode()) or {}
        settings = BotSettings.from_record(shop_record.get("bot"))
        question = next((text_of(r) for r in reversed(records)
                         if r["seq"] < notice["seq"] and r["role"] == "buyer" and text_of(r)
                         # not "转人工": the question before it
                         and handoff_reason(settings, text_of(r)) != "requested"), None)
        reply = next((text_of(r) for r in records
                      if r["seq"] > notice["seq"] and r["role"] == "agent" and text_of(r)),
                     None)
        if question and reply:
            await self._kb_tell(Propose(self.meta.shop, question, None, reply, "handoff"))

    async def _assist(self, asked: StoredMessage) -> None:
        """Agent assist: the best KB answers for the buyer's latest question, to the agent."""
        agent = self.meta.agent
        assert agent is not None, "assist is for an assigned conversation"
        await self._kb_tell(AssistKb(asked.body["text"], self.meta.shop, self.id, asked.seq,
                                     agent))
