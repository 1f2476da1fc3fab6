"""The bot's turns in a conversation: answer, suggest, hand over, assist the agent.

A mixin of :class:`~octim.domain.conversations.actor.ConversationActor`: it runs on
the conversation's own task and writes through the actor's helpers. The
decisions (modes, hand-off words) are in :mod:`octim.domain.bot`, the
matching in :mod:`octim.domain.kb`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from octim.actors import Message, Reply
from octim.domain.bot import TRANSCRIPT, BotSettings, handoff_reason
from octim.domain.context import EngineContext
from octim.domain.conversations.model import QUEUED, ConversationMeta, StoredMessage, preview
from octim.domain.kb.knowledge import ID as KB_ID
from octim.domain.kb.knowledge import KIND as KB
from octim.domain.kb.knowledge import AskKb, AssistKb, RecordUnanswered
from octim.domain.routing.messages import RouteConversation
from octim.store import Op, Put


class BotTurns:
    """See the module docstring."""

    meta: ConversationMeta
    context: EngineContext

    if TYPE_CHECKING:
        @property
        def id(self) -> str: ...
        def _meta_op(self) -> Put: ...
        def _set_state(self, state: str) -> list[Op]: ...
        def _event(self, event: str, data: dict[str, Any], frames: list[Any]) -> list[Op]: ...
        def _append(self, sender: str, role: str, kind: str, body: dict[str, Any],
                    frames: list[Any], *, msg_id: str = "", exclude: int | None = None
                    ) -> tuple[StoredMessage, Op]: ...
        async def _commit(self, ops: list[Op], frames: list[Any],
                          done: Reply[Any] | None = None, result: Any = None) -> None: ...
        def _route(self, reason: str) -> RouteConversation: ...
        async def _dispatcher(self, message: Message) -> None: ...

    async def _kb(self, message: Message) -> Any:
        assert self.context.directory is not None
        return await self.context.directory.ref(KB, KB_ID).ask(message)

    async def _bot_turn(self, asked: StoredMessage) -> None:
        """Answer from the knowledge base, offer suggestions, or hand over."""
        text, shop = asked.body["text"], self.meta.shop
        shop_record = self.context.store.get("shops", shop.encode()) or {}
        settings = BotSettings.from_record(shop_record.get("bot"))
        reason = handoff_reason(settings, text)
        result: dict[str, Any] = {"suggestions": []}
        if reason is None:
            result = await self._kb(AskKb(text, shop))
            if result["answered"]:
                answer = {"text": result["answer"], "kb": result["id"]}
                if result["suggestions"]:  # "you may also ask" under the answer
                    answer["related"] = result["suggestions"]
                await self._bot_say(answer)
                return
            self.meta.bot_unanswered = self.meta.bot_unanswered + 1
            if self.meta.bot_unanswered < settings.handoff_after:
                await self._kb_tell(RecordUnanswered(text, shop, False))
                await self._bot_say({"text": "抱歉，我没能理解您的问题。您是想问：",
                                     "suggestions": result["suggestions"]})
                return
            reason = "unanswered"
        await self._kb_tell(RecordUnanswered(text, shop, True))
        await self._handoff(reason, result["suggestions"], asked)

    async def _kb_tell(self, message: Message) -> None:
        assert self.context.directory is not None
        await self.context.directory.ref(KB, KB_ID).tell(message)

    async def _bot_say(self, body: dict[str, Any]) -> None:
        frames: list[Any] = []
        _, put = self._append("bot", "bot", "text", body, frames)
        self.meta.preview = preview("text", body)
        self.meta.waiting_since = None  # answered; a person is not awaited
        await self._commit([put, self._meta_op()], frames)

    async def _handoff(self, reason: str, guesses: list[dict[str, Any]],
                       asked: StoredMessage) -> None:
        """转人工: to routing with the reason, the bot's guesses and the transcript."""
        earlier = self.context.store.scan_scope("messages", self.id,
                                                after=max(0, asked.seq - TRANSCRIPT))
        fields = ("seq", "from", "role", "kind", "body", "ts")
        transcript = [{k: r[k] for k in fields} for s, r in earlier if s < asked.seq]
        transcript.append({k: v for k, v in asked.to_record().items() if k in fields})
        handoff = {"reason": reason, "guesses": guesses, "transcript": transcript,
                   "at": self.context.now_ms()}
        frames: list[Any] = []
        ops = self._set_state(QUEUED)
        meta = self.meta
        meta.handoff, meta.routed, meta.waiting_since = handoff, True, asked.ts
        meta.first_text = asked.body["text"][:500]
        ops += self._event("handoff", {"reason": reason}, frames)
        seq = self.meta.last_seq + 1
        notice = {"text": "正在为您转接人工客服，请稍候。", "handoff": {"reason": reason}}
        _, put = self._append("bot", "system", "system", notice, frames,
                              msg_id=f"handoff-{seq}")
        ops += [put, self._meta_op()]
        await self._commit(ops, frames)
        await self._dispatcher(self._route("bot_handoff"))

    async def _assist(self, asked: StoredMessage) -> None:
        """Agent assist: the best KB answers for the buyer's latest question, to the agent."""
        agent = self.meta.agent
        assert agent is not None, "assist is for an assigned conversation"
        await self._kb_tell(AssistKb(asked.body["text"], self.meta.shop, self.id, asked.seq,
                                     agent))
