"""A shop's routing policy and the targeting rules that pick a group and priority.

Pure functions over plain data: the dispatcher calls :func:`target` when a
conversation starts waiting. See docs/routing.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RULE_KINDS = ("channel", "page", "category", "keywords", "vip")

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
    # The ordered targeting rules (kind, values, group): when given, they replace the
    # four maps above (channel, context, category, keyword groups and the VIP group).
    rules: tuple[tuple[str, tuple[str, ...], str], ...] | None = None
    compiled: tuple[tuple[str, tuple[str, ...], str], ...] = field(
        default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "compiled",
                           self.legacy_rules() if self.rules is None else self.rules)

    def legacy_rules(self) -> tuple[tuple[str, tuple[str, ...], str], ...]:
        """The maps as one ordered list, in their fixed order: channel, entry page,
        category, keywords, VIP group."""
        out: list[tuple[str, tuple[str, ...], str]] = []
        if self.channel_groups:  # the channel's id first, then its type: one rule
            out.append(("channel_map", tuple(self.channel_groups), ""))
        out += [("page", (k,), g) for k, g in self.context_groups.items()]
        out += [("category", (k,), g) for k, g in self.category_groups.items()]
        out += [("keywords", tuple(k), g) for k, g in self.keyword_groups]
        if self.vip_group:
            out.append(("vip", (), self.vip_group))
        return tuple(out)

    def ordered_rules(self) -> list[dict[str, Any]]:
        """The rules in force, as the API shows them."""
        out = []
        for kind, values, group in self.compiled:
            if kind == "channel_map":
                out += [{"kind": "channel", "values": [v], "group": self.channel_groups[v]}
                        for v in values]
            else:
                out.append({"kind": kind, "values": list(values), "group": group})
        return out

    @classmethod
    def from_record(cls, raw: dict[str, Any] | None) -> RoutingPolicy:
        """Build from the ``routing`` map of a shop record (validated by the API)."""
        if not raw:
            return cls()
        values = dict(raw)
        if "keyword_groups" in values:
            values["keyword_groups"] = tuple(
                (tuple(rule["keywords"]), rule["group"]) for rule in values["keyword_groups"])
        if "rules" in values:
            values["rules"] = tuple((rule["kind"], tuple(rule.get("values") or ()),
                                     rule["group"]) for rule in values["rules"])
        known = {f for f in cls.__dataclass_fields__} - {"compiled"}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass(frozen=True, slots=True)
class Target:
    """Where a conversation should go and why."""

    group: str | None  # None: any agent of the shop
    priority: int
    sla_seconds: float
    cost: int
    rules: tuple[str, ...]  # which targeting rules fired, for the trace
    fired: int = -1  # the index of the rule that chose the group (-1: none)


def target(policy: RoutingPolicy, groups: set[str], context: dict[str, Any],
           first_text: str, level: int) -> Target:
    """Apply the shop's ordered targeting rules; the first that matches chooses the group.

    A rule only targets a group the shop actually has; otherwise it is skipped
    (and says so in the trace) and the next rule applies rather than stranding the
    buyer. Kinds: ``channel`` (the channel id, then its type), ``page`` (the entry
    page, or ``order``/``product`` from a reference), ``category`` (the SKU category),
    ``keywords`` (any of them in the first message) and ``vip`` (a VIP buyer).
    """
    group: str | None = None
    fired: list[str] = []
    index = -1
    vip = level >= policy.vip_level > 0
    channel = [v for v in (context.get("via"), context.get("channel")) if isinstance(v, str)]
    page = context.get("page") or next((k for k in ("order", "product") if k in context), None)
    category = context.get("category")
    lowered = first_text.lower()
    for i, (kind, values, candidate) in enumerate(policy.compiled):
        why = None
        if kind == "channel":
            hit = next((c for c in channel if c in values), None)
            why = hit and f"channel:{hit}"
        elif kind == "channel_map":
            hit = next((c for c in channel if c in values), None)
            why = hit and f"channel:{hit}"
            candidate = policy.channel_groups[hit] if hit else candidate
        elif kind == "page":
            why = f"context:{page}" if isinstance(page, str) and page in values else None
        elif kind == "category":
            why = (f"category:{category}" if isinstance(category, str) and category in values
                   else None)
        elif kind == "keywords":
            hit = next((k for k in values if k.lower() in lowered), None)
            why = hit and f"keyword:{hit}"
        elif kind == "vip":
            why = "vip_group" if vip else None
        if not why:
            continue
        if candidate in groups:
            group, index = candidate, i
            fired.append(why)
            break
        fired.append(f"{why} (group {candidate!r} does not exist: skipped)")
    if vip:
        fired.append(f"vip:level {level}")
    cost = policy.group_costs.get(group or "", 1)
    return Target(group, level if vip else 0,
                  policy.vip_sla_seconds if vip else policy.sla_seconds, max(1, cost),
                  tuple(fired), index)
