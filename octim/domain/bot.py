"""The shop bot (智能机器人): when it talks, what it says, when it hands over.

Pure decisions over plain data; the ConversationActor calls them and does the
writing. A shop's ``bot`` settings:

* ``mode``: ``off``, ``always``, ``outside_hours`` or ``when_no_agent`` (the
  default): when the mode applies, a new conversation starts in state ``bot``;
* ``hours``: business hours ``{"start": "09:00", "end": "23:00", "utc_offset": 480}``;
* ``handoff_after``: unanswered questions before handing over (default 2);
* ``handoff_words`` / ``anger_words``: extra words that hand over at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MODES = ("off", "always", "outside_hours", "when_no_agent")
ASK_FOR_HUMAN = ("人工", "转人工", "真人", "客服人员", "找客服", "human", "agent", "real person")
ANGER = ("投诉", "差评", "骗子", "垃圾", "举报", "退钱", "太差", "12315", "scam", "complain")
TRANSCRIPT = 20  # messages the agent gets with a hand-off


@dataclass(frozen=True, slots=True)
class BotSettings:
    mode: str = "when_no_agent"
    start_minute: int = 9 * 60
    end_minute: int = 23 * 60
    utc_offset: int = 480  # minutes (China Standard Time)
    handoff_after: int = 2
    handoff_words: tuple[str, ...] = ()
    anger_words: tuple[str, ...] = ()

    @classmethod
    def from_record(cls, raw: dict[str, Any] | None) -> BotSettings:
        raw = raw or {}
        hours = raw.get("hours") or {}

        def minute(text: str, default: int) -> int:
            hour, _, minute_ = str(text).partition(":")
            return int(hour) * 60 + int(minute_ or 0) if text else default

        return cls(mode=raw.get("mode", "when_no_agent"),
                   start_minute=minute(hours.get("start", ""), 9 * 60),
                   end_minute=minute(hours.get("end", ""), 23 * 60),
                   utc_offset=int(hours.get("utc_offset", 480)),
                   handoff_after=int(raw.get("handoff_after", 2)),
                   handoff_words=tuple(raw.get("handoff_words", ())),
                   anger_words=tuple(raw.get("anger_words", ())))

    def in_hours(self, now: float) -> bool:
        minute_of_day = int((now / 60 + self.utc_offset) % (24 * 60))
        if self.start_minute <= self.end_minute:
            return self.start_minute <= minute_of_day < self.end_minute
        return minute_of_day >= self.start_minute or minute_of_day < self.end_minute


def bot_starts(settings: BotSettings, now: float, agents_online: bool) -> bool:
    """Whether a new conversation starts with the bot."""
    if settings.mode == "always":
        return True
    if settings.mode == "outside_hours":
        return not settings.in_hours(now)
    if settings.mode == "when_no_agent":
        return not agents_online
    return False


def handoff_reason(settings: BotSettings, text: str) -> str | None:
    """``requested`` or ``complaint`` when the buyer's words call for a person."""
    lowered = text.lower()
    if any(w in lowered for w in (*ASK_FOR_HUMAN, *settings.handoff_words)):
        return "requested"
    if any(w in lowered for w in (*ANGER, *settings.anger_words)):
        return "complaint"
    return None
