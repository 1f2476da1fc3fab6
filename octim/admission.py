"""Admission control: when the engine is past its own budget, new conversations wait.

The engine watches three signals of its own health:

* **loop lag**: how late a task that sleeps every ``admission_probe_interval`` seconds
  (50 ms) wakes up (the trio loop is busy, or parked on commits), the third-worst of the
  last 20 probes (a single long step is not an overload);
* **commit latency**: the store writer's recent commits (their p90);
* **mailbox depth**: the messages queued for the engine's single actors: the dispatcher
  (every open and routing step) and the knowledge base (every bot answer);
* **ack latency**: the p90 of the acks sent in the last ``ACK_WINDOW`` seconds (what the
  running conversations feel, whatever the cause: a busy bot, a deep conversation
  mailbox, the store).

While any is past its threshold (settings ``admission_loop_lag_ms``,
``admission_commit_ms``, ``admission_mailbox``, ``admission_ack_ms``), a buyer's ``open``
that would start a **new** conversation answers ``rate_limited`` with ``retry_after``
seconds, and ``/readyz`` answers 503, so a load balancer sends new connections elsewhere.
Conversations already running are never shed: their frames, and an ``open`` that finds the
buyer's open conversation, go on. Every shed is counted, by reason (docs/operations.md).
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from typing import TYPE_CHECKING

import trio

from octim.errors import OctimError

if TYPE_CHECKING:
    from octim.engine import Engine

LAG_WINDOW = 20  # probes the lag is the worst of (one second)
RECENT_COMMITS = 200  # commits the commit latency is read over
COMMIT_WINDOW = 5.0  # ... if they ended this recently (an idle engine is not overloaded)
ACK_WINDOW = 2.0  # seconds of acks the ack latency is read over
RECENT_ACKS = 512  # ... at most this many
SUSTAINED = 3  # probes of the last second that must be late for the loop to be "lagging"


class Overloaded(OctimError):
    """A new conversation is refused while the engine is past its budget (a service
    state, told as it is: not the client's fault)."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Admission:
    """The engine's budget, and the sheds it caused."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.lags: deque[float] = deque(maxlen=LAG_WINDOW)
        self.sheds: dict[str, int] = {}
        self.acks: deque[tuple[float, float]] = deque(maxlen=RECENT_ACKS)  # (sent, took)
        self.forced: str | None = None  # a reason set by hand (tests, an operator's drill)
        self._said: tuple[float, str | None] = (-1.0, None)  # (when, what) overloaded said

    def loop_lag(self) -> float:
        """The worst wake-up delay of the last second, in seconds."""
        return max(self.lags, default=0.0)

    def sustained_lag(self) -> float:
        """The third-worst wake-up delay of the last second: one long step (a big report
        query) is a spike, not an overload; a loop late again and again is."""
        ordered = sorted(self.lags)
        return ordered[-SUSTAINED] if len(ordered) >= SUSTAINED else 0.0

    def commit_latency(self) -> float:
        """The p90 of the store's latest commits (at most ``RECENT_COMMITS``, of the last
        ``COMMIT_WINDOW`` seconds), in seconds; 0 with fewer than ten of them."""
        log = list(self.engine.store.statistics().commit_log)  # one copy, under the GIL
        since = time.monotonic() - COMMIT_WINDOW
        recent = [took for ended, took in log[-RECENT_COMMITS:] if ended >= since]
        if len(recent) < 10:
            return 0.0
        return statistics.quantiles(recent, n=10)[-1]

    def mailbox_depth(self) -> int:
        """Messages waiting for the dispatcher (every open and every routing step) or the
        knowledge base (every bot answer), whichever has more."""
        from octim.domain.kb.knowledge import ID as KB_ID
        from octim.domain.kb.knowledge import KIND as KB
        from octim.domain.routing.dispatcher import ID, KIND

        directory = self.engine.directory
        return max(directory.mailbox_depth(KIND, ID), directory.mailbox_depth(KB, KB_ID))

    def acked(self, took: float) -> None:
        """An ack went out ``took`` seconds after its send arrived (the gateway tells)."""
        self.acks.append((trio.current_time(), took))

    def ack_latency(self) -> float:
        """The p90 of the acks of the last ``ACK_WINDOW`` seconds; 0 with fewer than 20."""
        since = trio.current_time() - ACK_WINDOW
        recent = [took for sent, took in list(self.acks) if sent >= since]
        if len(recent) < 20:
            return 0.0
        return statistics.quantiles(recent, n=10)[-1]

    def overloaded(self) -> str | None:
        """Why the engine is past its budget now (``loop_lag``, ``commit_latency``,
        ``mailbox``, ``ack_latency``), or None."""
        if self.forced:
            return self.forced
        now = trio.current_time()
        if now - self._said[0] < 0.1:  # read again at most ten times a second
            return self._said[1]
        reason = self._measure()
        self._said = (now, reason)
        return reason

    def _measure(self) -> str | None:
        s = self.engine.settings
        if self.sustained_lag() * 1000 > s.admission_loop_lag_ms:
            return "loop_lag"
        if self.commit_latency() * 1000 > s.admission_commit_ms:
            return "commit_latency"
        if self.mailbox_depth() > s.admission_mailbox:
            return "mailbox"
        if self.ack_latency() * 1000 > s.admission_ack_ms:
            return "ack_latency"
        return None

    def admit_new(self) -> None:
        """Raise :class:`Overloaded` (and count it) if a new conversation must wait."""
        reason = self.overloaded()
        if reason is None:
            return
        self.sheds[reason] = self.sheds.get(reason, 0) + 1
        retry = self.engine.settings.admission_retry_after
        raise Overloaded(f"the service is busy ({reason}); try again in {retry:g} s", retry)

    async def probe(self) -> None:
        """Measure the loop's lag forever (the engine's task)."""
        interval = self.engine.settings.admission_probe_interval
        while True:
            asked = trio.current_time()
            await trio.sleep(interval)
            self.lags.append(max(0.0, trio.current_time() - asked - interval))
