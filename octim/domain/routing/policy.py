"""A shop's routing policy and the targeting rules that pick a group and priority.

Pure functions over plain data: the dispatcher calls :func:`target` when a
conversation starts waiting. See docs/routing.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_KEYWORDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("退货", "退款", "售后", "换货", "refund", "return"), "after_sales"),
    (("发货", "物流", "快递", "到哪", "shipping", "delivery"), "logistics"),
)


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """How one shop routes; every field has a sensible default."""

    ranking: str = "least_load"  # least_load | free_ratio | longest_idle | weighted
    sticky_days: float = 3.0  # 熟客优先: prefer the agent who served this buyer within this
    sticky_wait: float = 0.0  # seconds a returning buyer waits for that agent when busy
    channel_groups: dict[str, str] = field(default_factory=dict)  # channel id or type → group
    context_groups: dict[str, str] = field(default_factory=dict)  # page → group
    category_groups: dict[str, str] = field(default_factory=dict)  # SKU category → group
    keyword_groups: tuple[tuple[tuple[str, ...], str], ...] = DEFAULT_KEYWORDS
    vip_level: int = 1  # buyers at this level or above are VIP
    vip_group: str | None = None  # … and go to this group if it has agents
    vip_segments: tuple[str, ...] = ()  # members of these segments are served as VIP
    group_costs: dict[str, int] = field(default_factory=dict)  # capacity units per group
    sla_seconds: float = 180.0  # first-response target; orders the queue
    vip_sla_seconds: float = 60.0
    no_reply_seconds: float = 180.0  # assigned but no agent reply → reassign (0 = never)
    requeue_on_offline: bool = True  # an agent going offline returns unanswered chats
    dedicated: dict[str, str] = field(default_factory=dict)  # buyer → dedicated agent
    transfer_wait: float = 60.0  # seconds a transfer to a busy agent waits for them
    overflow_to_platform: bool = False  # nobody of the shop online → platform agents serve

    @classmethod
    def from_record(cls, raw: dict[str, Any] | None) -> RoutingPolicy:
        """Build from the ``routing`` map of a shop record (validated by the API)."""
        if not raw:
            return cls()
        values = dict(raw)
        if "keyword_groups" in values:
            values["keyword_groups"] = tuple(
                (tuple(rule["keywords"]), rule["group"]) for rule in values["keyword_groups"])
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass(frozen=True, slots=True)
class Target:
    """Where a conversation should go and why."""

    group: str | None  # None: any agent of the shop
    priority: int
    sla_seconds: float
    cost: int
    rules: tuple[str, ...]  # which targeting rules fired, for the trace


def target(policy: RoutingPolicy, groups: set[str], context: dict[str, Any],
           first_text: str, level: int) -> Target:
    """Apply the targeting rules in order: channel, entry context, keywords, buyer level.

    A rule only targets a group the shop actually has; otherwise it is skipped
    (and says so in the trace) rather than stranding the buyer.
    """
    group: str | None = None
    fired: list[str] = []

    def choose(candidate: str | None, why: str) -> None:
        nonlocal group
        if group is not None or candidate is None:
            return
        if candidate in groups:
            group = candidate
            fired.append(why)
        else:
            fired.append(f"{why} (group {candidate!r} does not exist: skipped)")

    for key in ("via", "channel"):  # the channel itself, then its type (wechat, app…)
        value = context.get(key)
        if isinstance(value, str) and value in policy.channel_groups:
            choose(policy.channel_groups[value], f"channel:{value}")
            break
    page = context.get("page") or next((k for k in ("order", "product") if k in context), None)
    if isinstance(page, str):
        choose(policy.context_groups.get(page), f"context:{page}")
    category = context.get("category")
    if isinstance(category, str):
        choose(policy.category_groups.get(category), f"category:{category}")
    lowered = first_text.lower()
    for keywords, keyword_group in policy.keyword_groups:
        hit = next((k for k in keywords if k.lower() in lowered), None)
        if hit is not None:
            choose(keyword_group, f"keyword:{hit}")
            break
    vip = level >= policy.vip_level > 0
    if vip:
        fired.append(f"vip:level {level}")
        if group is None:
            choose(policy.vip_group, "vip_group")
    cost = policy.group_costs.get(group or "", 1)
    return Target(group, level if vip else 0,
                  policy.vip_sla_seconds if vip else policy.sla_seconds, max(1, cost),
                  tuple(fired))
