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
from octim.domain.kb.knowledge import AskKb, AssistKb, RecordUnanswered
from octim.domain.routing.messages import RouteConversation


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
            result = await self._kb(AskKb(text, shop))
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

    async def _assist(self, asked: StoredMessage) -> None:
        """Agent assist: the best KB answers for the buyer's latest question, to the agent."""
        agent = self.meta.agent
        assert agent is not None, "assist is for an assigned conversation"
        await self._kb_tell(AssistKb(asked.body["text"], self.meta.shop, self.id, asked.seq,
                                     agent))
