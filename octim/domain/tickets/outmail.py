"""Public ticket replies out by email: the message, a durable outbox and the sender.

A public staff reply to a ticket whose requester has an email address becomes an RFC
5322 message (:func:`compose`) written to ``mail_outbox`` **in the same commit** as the
reply, with its ``Message-ID`` recorded in ``ticket_mail`` and on the ticket in that
commit too: the buyer's answer threads into the ticket whatever happens to the delivery,
and a reply that was acknowledged is never lost to a crash before it was sent.

The :class:`Mailer` actor (kind ``mail``, one per engine) sends the outbox through the
configured SMTP relay (``smtp``; ``smtp_security`` ``starttls``, ``tls`` or ``none``;
``smtp_user``/``smtp_password``; ``smtp_ca_file`` to trust a private CA), with the
standard library's :mod:`smtplib` on a worker thread so the trio loop never waits on the
network. A sent message leaves the outbox; a failure is retried ``mail_backoff`` seconds
later, doubling, for ``mail_attempts`` attempts, then moves to ``mail_dead``. Retries
are timers on the engine's clock. Each message carries

* ``Message-ID`` (``<ticket.n.random@domain>``), ``In-Reply-To`` the latest message of
  the ticket's mail thread and ``References`` the thread (at most 20);
* ``Subject: Re: [T-n] subject``: the token threads a reply whose client dropped the
  headers (docs/tickets.md, Inbound email);
* ``Auto-Submitted`` is *not* set: a person wrote it.
"""

from __future__ import annotations

import logging
import secrets
import smtplib
import ssl
from email.headerregistry import Address as MailAddress
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import trio

from octim.actors import Actor, ActorKind, Address, Message, record
from octim.config import Settings, parse_host_port
from octim.domain.context import EngineContext
from octim.store import Delete, Put, pack

log = logging.getLogger("octim.mail")

KIND = "mail"
ID = "out"
MAX_REFS = 20


def enabled(settings: Settings) -> bool:
    return bool(settings.smtp and settings.smtp_from)


def new_message_id(ticket: str, n: int, sender: str) -> str:
    domain = sender.rpartition("@")[2] or "octim.invalid"
    return f"<{ticket}.{n}.{secrets.token_hex(6)}@{domain}>"


def compose(*, sender: str, sender_name: str, to: str, subject: str, label: str, body: str,
            message_id: str, thread: list[str], now: float) -> bytes:
    """The reply as bytes (UTF-8, lines of at most 78 characters by the SMTP policy)."""
    msg = EmailMessage()
    user, _, domain = sender.rpartition("@")
    msg["From"] = MailAddress(sender_name, user, domain)
    msg["To"] = to
    token = f"[{label}]"
    msg["Subject"] = f"Re: {subject}" if token in subject else f"Re: {token} {subject}"
    msg["Message-ID"] = message_id
    msg["Date"] = formatdate(now, localtime=False)
    if thread:
        msg["In-Reply-To"] = thread[-1]
        msg["References"] = " ".join(thread[-MAX_REFS:])
    msg.set_content(f"{body}\n\n-- \n{sender_name} · {label}\n"
                    "回复本邮件即可继续沟通 / Reply to this email to continue.\n")
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def outbox_key(at_ms: int, message_id: str) -> bytes:
    """Queued order: the time it was written (8 bytes, big-endian), then its Message-ID."""
    return at_ms.to_bytes(8, "big") + message_id.encode()


@record
class Kick(Message):
    """Something was added to the outbox (or the engine started): send what is due."""


@record
class SendDue(Message):
    key: bytes


class Mailer(Actor[EngineContext]):
    """See the module docstring."""

    def __init__(self, address: Address, context: EngineContext) -> None:
        super().__init__(address, context)
        self.scheduled: set[bytes] = set()
        self.sent = 0

    def may_passivate(self) -> bool:
        return False  # its retry timers name it

    async def on_start(self) -> None:
        await self._schedule_all()

    async def receive(self, message: Message) -> Any:
        match message:
            case Kick():
                await self._schedule_all()
            case SendDue(key=key):
                self.scheduled.discard(key)
                await self._send(key)
        return None

    async def _schedule_all(self) -> None:
        now = self.context.clock()
        for key, item in self.context.store.scan("mail_outbox"):
            if key in self.scheduled:
                continue
            if item["next_at"] <= now:
                await self._send(key)
            else:
                self._schedule(key, item["next_at"])

    def _schedule(self, key: bytes, at: float) -> None:
        self.scheduled.add(key)
        self.context.timers.at(at, KIND, ID, SendDue(key))

    async def _send(self, key: bytes) -> None:
        store, settings = self.context.store, self.context.settings
        item = store.get("mail_outbox", key)
        if item is None:
            return
        try:
            await trio.to_thread.run_sync(deliver, settings, item["from"], item["to"],
                                          bytes(item["raw"]), abandon_on_cancel=True)
        except (OSError, smtplib.SMTPException, ssl.SSLError, ValueError) as exc:
            attempts = item["attempts"] + 1
            error = f"{type(exc).__name__}: {exc}"[:500]
            if attempts >= settings.mail_attempts:
                log.warning("mail dead", extra={"ticket": item["ticket"], "error": error})
                await store.write((Delete("mail_outbox", key),
                                   Put("mail_dead", key, pack({**item, "attempts": attempts,
                                                               "error": error}))))
                return
            delay = settings.mail_backoff * 2 ** (attempts - 1)
            item = {**item, "attempts": attempts, "error": error,
                    "next_at": self.context.clock() + delay}
            log.info("mail retry", extra={"ticket": item["ticket"], "error": error,
                                          "attempt": attempts})
            await store.write((Put("mail_outbox", key, pack(item)),))
            self._schedule(key, item["next_at"])
            return
        self.sent += 1
        await store.write((Delete("mail_outbox", key),))
        log.info("mail sent", extra={"ticket": item["ticket"], "message_id": item["id"]})


def deliver(settings: Settings, sender: str, to: str, raw: bytes) -> None:
    """One SMTP transaction (on a worker thread)."""
    relay = parse_host_port("smtp (OCTIM_SMTP)", settings.smtp)
    context = ssl.create_default_context(cafile=settings.smtp_ca_file or None)
    timeout = settings.mail_timeout
    client: smtplib.SMTP
    if settings.smtp_security == "tls":
        client = smtplib.SMTP_SSL(relay.host, relay.port, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(relay.host, relay.port, timeout=timeout)
    with client:
        if settings.smtp_security == "starttls":
            client.starttls(context=context)  # raises when the relay does not offer it
        if settings.smtp_user:
            client.login(settings.smtp_user, settings.smtp_password)
        refused = client.sendmail(sender, [to], raw)
        if refused:
            raise smtplib.SMTPRecipientsRefused(refused)


MAILER_KIND: ActorKind[EngineContext] = ActorKind(KIND, Mailer, idle_timeout=3600.0)
