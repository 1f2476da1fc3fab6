"""Channels: their records (the platform, or the shop's admins), signed inbound messages
and delivery receipts (the channel's own secret), dead letters, and buyers' identities.

See docs/channels.md. The inbound and receipt routes carry no bearer credential: the
HTTP guard checks that their timestamp is fresh before reading a byte of the body, and
the route checks the HMAC of the body with the channel's secret before parsing it.
"""

# No ``from __future__ import annotations``: FastAPI evaluates these annotations.
import hmac
import ipaddress
import secrets
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, ValidationError, model_validator

from octim.api.auth import require_staff_of
from octim.api.customers import CustomerBody
from octim.auth import Principal
from octim.domain.channels import (
    ALL_KINDS,
    DEFAULT_KINDS,
    IDENTITY_TYPES,
    PLATFORMS,
    TYPES,
    UnsupportedKind,
    report_channel,
    validate_channel_id,
)
from octim.domain.conversations.actor import KIND as CONVERSATION
from octim.domain.conversations.messages import SendMessage
from octim.domain.conversations.model import (
    ConversationClosed,
    Forbidden,
    pair_key,
    validate_body,
)
from octim.domain.customers import KIND as CUSTOMER
from octim.domain.customers import UpsertCustomer
from octim.domain.shops import KIND as SHOP
from octim.domain.shops import OpenConversation
from octim.errors import ClientError, InvalidInput, NotFound
from octim.store import Delete, Put, pack
from octim.webhooks import TargetPolicy, sign

if TYPE_CHECKING:
    from octim.api.auth import Auth
    from octim.engine import Engine

ChannelId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Ref = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
ShopRef = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")]
External = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
Text = Annotated[str, Field(max_length=200)]
M = TypeVar("M", bound=BaseModel)


class BadSignature(ClientError):
    """A channel request's signature does not verify."""

    code = "invalid_signature"
    status = 401


class ChannelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shop: ShopRef
    type: Literal[TYPES]  # type: ignore[valid-type]
    name: Annotated[str, Field(min_length=1, max_length=100)]
    platform: Literal[PLATFORMS] | None = None  # type: ignore[valid-type]
    secret: Annotated[str, Field(min_length=16, max_length=256)] | None = None
    kinds: list[Literal[ALL_KINDS]] | None = Field(None, min_length=1)  # type: ignore[valid-type]
    convert: bool = False  # send cards and links as text where the channel carries text
    outbound_url: AnyHttpUrl | None = None
    product_url: Annotated[str, Field(max_length=500)] | None = None  # "…/item/{product}"


class InboundBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: External  # the external user's id on this channel (a WeChat openid…)
    # The external message id: a repeat is acknowledged and stored once. At most 120
    # characters, so that ``ch:<id>``, its client id in the conversation, is never cut.
    id: Annotated[str, Field(min_length=1, max_length=120, pattern=r"^[\x21-\x7e]+$")]
    kind: Literal["text", "link", "product", "order", "image", "voice"]
    body: dict[str, Any]
    ts: int | None = Field(None, ge=0, le=2**53)  # the channel's own time (ms)
    name: Text | None = None  # the user's nickname there, for a first contact
    context: dict[Literal["page", "product", "order", "category"],
                  Annotated[str, Field(max_length=128)]] = {}


class Receipt(BaseModel):
    model_config = ConfigDict(extra="forbid")
    delivery: Annotated[str, Field(min_length=1, max_length=160)]
    status: Literal["delivered", "failed", "read"]
    ts: int | None = Field(None, ge=0, le=2**53)
    error: Annotated[str, Field(max_length=300)] | None = None


class ReceiptsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    receipts: list[Receipt] = Field(min_length=1, max_length=500)


class Identity(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal[IDENTITY_TYPES]  # type: ignore[valid-type]
    value: External
    channel: Annotated[str, Field(max_length=64)] | None = None  # for type "channel"


class IdentitiesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    identities: list[Identity] = Field(min_length=1, max_length=50)

    @model_validator(mode="after")
    def channels_named(self) -> "IdentitiesBody":
        for identity in self.identities:
            if (identity.type == "channel") != bool(identity.channel):
                raise ValueError("a channel identity names its channel; no other type does")
        return self


def parsed(model: type[M], raw: bytes) -> M:
    """A signed body (read raw for its signature), validated: ``invalid_body`` if not."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidInput("; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                                     for e in exc.errors())[:1000]) from None


def shown(record: dict[str, Any], secret: bool = False) -> dict[str, Any]:
    """A channel as the API shows it (its secret only right after it was made)."""
    return {**record, "secret": record["secret"] if secret else "…"}




async def save_channel(engine: "Engine", channel: str, body: ChannelBody, *,
                       platform: bool) -> dict[str, Any]:
    """Create or replace a channel (the caller may configure ``body.shop``): see the
    route. ``platform``: the platform asks (a shop's admin cannot see other shops')."""
    policy = TargetPolicy.from_setting(engine.settings.webhook_allow)
    store = engine.store
    if store.get("shops", body.shop.encode()) is None:
        raise NotFound(f"no shop {body.shop!r}")
    before = engine.context.channels.get(channel)
    if before is not None and before["shop"] != body.shop:
        if not platform:  # another shop's channel: as if it did not exist
            raise NotFound(f"no channel {channel!r}")
        raise InvalidInput("a channel's shop cannot change: delete it and make another")
    if body.outbound_url is not None:
        if body.type != "api":
            raise InvalidInput("only api channels have an outbound_url")
        host = (body.outbound_url.host or "").strip("[]")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass  # a name: checked (and pinned) at every delivery
        else:
            if not policy.allowed(host, host):
                raise InvalidInput(f"outbound_url: {host} is not a public address "
                                   "(allow it with the webhook_allow setting)")
    made = body.secret is None and before is None
    secret = body.secret or (before["secret"] if before else secrets.token_urlsafe(32))
    now = engine.context.clock()
    record = {"id": channel, "shop": body.shop, "type": body.type, "name": body.name,
              "platform": body.platform or ("other" if body.type == "api" else None),
              "secret": secret,
              "kinds": list(body.kinds or DEFAULT_KINDS.get(body.type, ALL_KINDS)),
              "convert": body.convert,
              "outbound_url": str(body.outbound_url) if body.outbound_url else None,
              "product_url": body.product_url,
              "created_at": before["created_at"] if before else now, "updated_at": now}
    await store.write((Put("channels", channel.encode(), pack(record)),))
    return shown(record, secret=made)


async def receive_message(engine: "Engine", record: dict[str, Any], body: InboundBody
                          ) -> dict[str, Any]:
    """One inbound message of an api channel (already authenticated): see the route."""
    channel = record["id"]
    if body.kind not in record["kinds"]:
        raise UnsupportedKind(f"channel {channel!r} carries {', '.join(record['kinds'])}")
    # Refused before anything is written (the actor checks it again, as for any send).
    validate_body(body.kind, body.body, engine.settings.max_text_chars,
                  engine.context.image_hosts)
    store = engine.store
    inbound_key = pair_key(channel, body.id)
    known = store.get("channel_inbound", inbound_key)
    if known is not None:
        conversation, seq, ts = known
        return {"conversation": conversation, "seq": seq, "ts": ts,
                "buyer": engine.context.channels.buyer_of(channel, body.user), "duplicate": True}
    buyer = engine.context.channels.buyer_of(channel, body.user)
    if buyer is None:
        buyer = engine.context.channels.new_buyer_id(channel, body.user)
        await store.write(engine.context.channels.first_contact_ops(channel, body.user, buyer))
        if body.name and store.get("customers", buyer.encode()) is None:
            await engine.directory.ref(CUSTOMER, buyer).ask(UpsertCustomer(
                CustomerBody.model_validate({"nickname": body.name}).model_dump()))
    profile = store.get("customers", buyer.encode()) or {}
    context: dict[str, str] = {str(k): v for k, v in body.context.items()}
    context.update(channel=report_channel(record), via=channel)
    for attempt in (1, 2):
        opened = await engine.directory.ref(SHOP, record["shop"]).ask(OpenConversation(
            record["shop"], buyer, int(profile.get("level") or 0), context))
        conversation = str(opened["conversation"])
        try:
            reply = await engine.directory.ref(CONVERSATION, conversation).ask(SendMessage(
                conversation, buyer, "buyer", (), f"ch:{body.id}", body.kind,
                body.body, "", via=channel, via_user=body.user, inbound_key=inbound_key,
                sent_at=body.ts or 0))
            ack = await reply.wait()
            break
        except ConversationClosed:
            if attempt == 2:  # closed again at once: say so rather than loop
                raise
    return {"conversation": ack["conversation"], "seq": ack["seq"], "ts": ack["ts"],
            "buyer": buyer, "duplicate": False}


def router(engine: "Engine", auth: "Auth") -> APIRouter:
    """The channel routes (docs/channels.md)."""
    api = APIRouter(tags=["channels"])

    def channels() -> Any:
        return engine.context.channels

    def admin_of(who: Principal | None, shop: str) -> None:
        """The platform, or an admin of ``shop`` (agents read, they do not configure)."""
        if who is None:
            return
        require_staff_of(who, shop)
        if who.role not in ("shop_admin", "platform_admin"):
            raise Forbidden("shop admins configure channels")

    def owned(channel: str, who: Principal | None) -> dict[str, Any]:
        record = channels().get(channel)
        if record is None:
            raise NotFound(f"no channel {channel!r}")
        if who is not None:
            try:
                require_staff_of(who, record["shop"])
            except NotFound:
                raise NotFound(f"no channel {channel!r}") from None
        return dict(record)

    @api.put("/api/channels/{channel}")
    async def put_channel(channel: ChannelId, body: ChannelBody,
                          who: Annotated[Principal | None, Depends(auth.platform_or_person)]
                          ) -> Any:
        """Create or replace a channel of a shop; without ``secret`` a new channel gets
        one (shown in this answer only) and an existing one keeps its own."""
        validate_channel_id(channel)
        admin_of(who, body.shop)
        return await save_channel(engine, channel, body, platform=who is None or
                                  who.role == "platform_admin")

    @api.get("/api/channels")
    async def list_channels(
            who: Annotated[Principal | None, Depends(auth.platform_or_person)],
            shop: Annotated[str | None, Query(max_length=128,
                                              pattern=r"^[A-Za-z0-9._-]+$")] = None) -> Any:
        """A shop's channels (staff of the shop; the platform: any or all shops)."""
        if who is not None:
            if shop is None:
                raise InvalidInput("shop is required")
            require_staff_of(who, shop)
        return [shown(v) for _, v in engine.store.scan("channels")
                if shop is None or v["shop"] == shop]

    @api.get("/api/channels/{channel}")
    async def get_channel(channel: ChannelId, who: Annotated[
            Principal | None, Depends(auth.platform_or_person)]) -> Any:
        """One channel (its secret hidden)."""
        return shown(owned(channel, who))

    @api.delete("/api/channels/{channel}", status_code=204)
    async def delete_channel(channel: ChannelId, who: Annotated[
            Principal | None, Depends(auth.platform_or_person)]) -> JSONResponse:
        """Remove a channel; its conversations stay, replies queued for it are given up
        (dead letters with the error "target deleted")."""
        record = owned(channel, who)
        admin_of(who, record["shop"])
        await engine.store.write((Delete("channels", channel.encode()),))
        return JSONResponse(None, status_code=204)

    async def signed(request: Request, channel: str) -> tuple[dict[str, Any], bytes]:
        record = channels().get(channel)
        raw = await request.body()
        if record is None:
            raise NotFound(f"no channel {channel!r}")
        timestamp = request.headers.get("x-octim-timestamp", "")
        given = request.headers.get("x-octim-signature", "")
        if not hmac.compare_digest(given.encode(), sign(record["secret"], timestamp,
                                                         raw).encode()):
            raise BadSignature("the signature does not verify with the channel's secret "
                               "(X-Octim-Signature: sha256=HMAC(secret, timestamp.body))")
        return record, raw

    @api.post("/api/channels/{channel}/messages")
    async def inbound(channel: ChannelId, request: Request) -> Any:
        """A message of an external user (signed with the channel's secret): opens or
        continues their conversation with the channel's shop, stored once per ``id``."""
        record, raw = await signed(request, channel)
        if record["type"] != "api":
            raise InvalidInput(f"channel {channel!r} is not an api channel")
        body = parsed(InboundBody, raw)
        return await receive_message(engine, record, body)

    @api.post("/api/channels/{channel}/receipts")
    async def receipts(channel: ChannelId, request: Request) -> Any:
        """Delivery callbacks (signed like inbound messages): ``delivered``, ``failed``,
        ``read`` for the ``delivery`` ids of outbound messages; never backwards."""
        _, raw = await signed(request, channel)
        body = parsed(ReceiptsBody, raw)
        return await channels().receipts(channel, [r.model_dump() for r in body.receipts])

    @api.get("/api/channels/{channel}/dead")
    async def dead(channel: ChannelId, who: Annotated[
            Principal | None, Depends(auth.platform_or_person)]) -> Any:
        """Replies that failed every attempt."""
        admin_of(who, owned(channel, who)["shop"])
        return [{k: v for k, v in letter.items() if k not in ("body", "extra")}
                for _, letter in engine.store.scan("channel_dead")
                if letter.get("channel") == channel]

    @api.post("/api/channels/{channel}/dead/{delivery}/resend", status_code=202)
    async def resend(channel: ChannelId, delivery: Annotated[str, Path(max_length=160)],
                     who: Annotated[Principal | None, Depends(auth.platform_or_person)]
                     ) -> Any:
        """Queue a dead reply again (the same delivery id, fresh attempts)."""
        admin_of(who, owned(channel, who)["shop"])
        done = await engine.courier.resend(
            "channel", delivery, check=lambda letter: letter.get("channel") == channel)
        if done is None:
            raise NotFound(f"no dead delivery {delivery!r} for {channel!r}")
        return {"resent": delivery}

    @api.put("/api/customers/{customer}/identities", dependencies=[Depends(auth.platform)])
    async def link(customer: Ref, body: IdentitiesBody) -> Any:
        """Link identities (a channel's user id, a WeChat unionid, a phone, an email, an
        app user id) to one buyer; a buyer id that had one of them merges into it."""
        return await channels().link(customer, [i.model_dump(exclude_none=True)
                                                for i in body.identities])

    @api.get("/api/customers/{customer}/identities", dependencies=[Depends(auth.platform)])
    async def identities(customer: Ref) -> Any:
        """A buyer's linked identities and the buyer ids merged into it."""
        return {"customer": customer, "identities": channels().identities(customer),
                "aliases": channels().aliases(customer)}

    return api
