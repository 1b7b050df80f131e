"""Pacing alert texts to what Twilio's senders can send, life-safety first.

Twilio accepts every message at once and queues it per sender (a US long code sends one
segment a second), first in, first out. Handing it a surge would put a life-safety alert
behind hundreds of ordinary ones. So tipline keeps its own estimate of how long Twilio's queue
is (a clock per sender pool and per recipient, since a sticky sender sends all of one
recipient's texts from one number) and:

- hands an ordinary alert over only while that queue is shorter than ``ORDINARY_HEADROOM``
  seconds; otherwise the alert waits in tipline (``SendHeld``: the task is retried later)
  until its validity period is spent, then it fails and the contact's next channel opens;
- hands a life-safety alert over at once, ahead of every ordinary one still waiting in tipline,
  unless the queue is already longer than its validity period (then it fails at once, and its
  call, already placed, or the next channel carries it).

The clocks live in Redis when the broker is Redis (every worker process shares them), in
memory otherwise (the embedded default runs one worker process).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

# Ordinary alerts keep Twilio's queue at most this many seconds long, so a life-safety text
# handed over after them waits at most this long behind them.
ORDINARY_HEADROOM = 2.0
# A held alert is looked at again at least this often (and the sweep sees it touched).
MAX_HOLD = 10.0
# A text needs at least this long in Twilio's queue to be worth handing over.
MIN_VALIDITY = 5
_CLOCK_TTL_MS = 3_600_000

# GSM 03.38 basic set and extension: a text in it takes 160 characters per segment (153 when
# split); anything else is sent as UCS-2, 70 (67) per segment.
_GSM = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNO"
           "PQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM_EXT = set("^{}\\[~]|€")


def segments(text: str) -> int:
    """How many SMS segments Twilio bills (and queues) for ``text``."""
    if all(c in _GSM or c in _GSM_EXT for c in text):
        units = len(text) + sum(1 for c in text if c in _GSM_EXT)
        return 1 if units <= 160 else -(-units // 153)
    units = sum(2 if ord(c) > 0xFFFF else 1 for c in text)
    return 1 if units <= 70 else -(-units // 67)


@dataclass(frozen=True)
class Admission:
    """``ok``: handed over now, expected to wait ``wait`` s in Twilio's queue. Otherwise the
    queue is ``wait`` s longer than this alert may join."""

    ok: bool
    wait: float


class Pacer(Protocol):
    def admit(self, recipient: str, segments: int, limit: float) -> Admission:
        """Take a place in the senders' queue if it is at most ``limit`` s long now."""
        ...


@dataclass(frozen=True)
class Rate:
    """Segments per second of one sender, and how many senders the pool has."""

    sender_mps: float = 1.0
    senders: int = 1

    def costs(self, n_segments: int) -> tuple[float, float]:
        """Seconds of the pool's queue and of one sender's queue a text takes."""
        return (n_segments / (self.sender_mps * self.senders), n_segments / self.sender_mps)


class LocalPacer:
    """The clocks in this process (the embedded default: one worker process)."""

    def __init__(self, rate: Rate, clock: Any = time.monotonic) -> None:
        self.rate = rate
        self.clock = clock
        self._pool = 0.0
        self._recipients: dict[str, float] = {}
        self._lock = threading.Lock()

    def admit(self, recipient: str, segments: int, limit: float) -> Admission:
        pool_cost, one_cost = self.rate.costs(segments)
        with self._lock:
            now = self.clock()
            pool = max(now, self._pool)
            one = max(now, self._recipients.get(recipient, 0.0))
            backlog = max(pool, one) - now
            if backlog > limit:
                return Admission(False, backlog - limit)
            self._pool = pool + pool_cost
            self._recipients[recipient] = one + one_cost
            if len(self._recipients) > 10_000:  # forget recipients whose queue has drained
                self._recipients = {k: v for k, v in self._recipients.items() if v > now}
            return Admission(True, backlog)


# Atomic in Redis: read both clocks, admit or not, advance both. Redis's own clock, so every
# worker process agrees on "now".
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local pool = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
local one = math.max(now, tonumber(redis.call('GET', KEYS[2]) or '0'))
local backlog = math.max(pool, one) - now
if backlog > tonumber(ARGV[3]) then return {0, tostring(backlog - tonumber(ARGV[3]))} end
redis.call('SET', KEYS[1], tostring(pool + tonumber(ARGV[1])), 'PX', ARGV[4])
redis.call('SET', KEYS[2], tostring(one + tonumber(ARGV[2])), 'PX', ARGV[4])
return {1, tostring(backlog)}
"""


class RedisPacer:
    """The clocks in Redis, shared by every worker process."""

    def __init__(self, rate: Rate, url: str, prefix: str = "tipline:pace:sms") -> None:
        import redis

        self.rate = rate
        self.prefix = prefix
        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._script = self._redis.register_script(_ADMIT)

    def admit(self, recipient: str, segments: int, limit: float) -> Admission:
        import hashlib

        pool_cost, one_cost = self.rate.costs(segments)
        # The recipient is a staff number; keyed by a digest anyway so Redis holds no number.
        who = hashlib.sha256(recipient.encode()).hexdigest()[:16]
        ok, value = self._script(keys=[f"{self.prefix}:pool", f"{self.prefix}:to:{who}"],
                                 args=[pool_cost, one_cost, limit, _CLOCK_TTL_MS])
        return Admission(bool(int(ok)), float(value))


def build_pacer(rate: Rate, broker_url: str, what: str = "sms") -> Pacer:
    """Redis's clocks when the broker is Redis (shared by all workers), else this process's;
    ``what`` keeps the texts' and the calls' clocks apart."""
    if broker_url.startswith(("redis://", "rediss://")):
        return RedisPacer(rate, broker_url, prefix=f"tipline:pace:{what}")
    return LocalPacer(rate)
