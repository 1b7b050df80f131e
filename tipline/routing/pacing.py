"""Pacing alert texts to what Twilio's senders can send, life-safety first.

Twilio accepts every message at once and queues it per sender (a US long code sends one
segment a second), first in, first out. Handing it a surge would put a life-safety alert
behind hundreds of ordinary ones. So tipline keeps its own estimate of how long Twilio's queue
is (a clock per sender pool and per recipient, since a sticky sender sends all of one
recipient's texts from one number) and:

- hands an ordinary alert over only while that queue is shorter than ``ORDINARY_HEADROOM``
  seconds; otherwise the alert gets a turn in tipline's own line (first come, first served)
  and waits for it (``SendHeld``: its task is retried at its turn, so a held alert costs one
  retry, not a poll every few seconds); if that turn is past its validity it fails at once
  and the contact's next channel opens;
- hands a life-safety alert over at once, ahead of every ordinary one still waiting in tipline,
  unless the queue is already longer than its validity period (then it fails at once, and its
  call, already placed, or the next channel carries it);
- a life-safety alert that must not fail for the queue (its dispatch's last channel, or a call:
  the account's calls per second delay a call, they do not make it useless) takes its place in
  Twilio's queue at once, still ahead of every ordinary alert, and is held in tipline only
  until that place is within its limit (``ahead=True``). It never joins the ordinary line: a
  life-safety text parked behind a surge of ordinary ones waited up to 28 s in the routing
  benchmark before this;
- gives each life-safety tip's first text priority over the later texts of tips already
  alerted (``group``: the tip). The first text of a tip to ask goes as above; a later one, to
  another of its contacts, takes its place ahead of the ordinary alerts but is handed over only
  when that place is within ``URGENT_HEADROOM`` of the front. Twilio's queues are first in,
  first out per number, and a number serves several recipients (sticky sender: the mapping is
  Twilio's, tipline does not know it), so without this a later tip's first text waited behind
  every text of the tips before it, on a number shared with their busiest contacts: 10.5-12.6 s
  to the phone in the routing benchmark. Now the texts in Twilio's queues at any moment are at
  most about ``URGENT_HEADROOM`` seconds of the pool's rate plus the tips' first texts.

The clocks live in Redis when the broker is Redis (every worker process shares them), in
memory otherwise (the embedded default runs one worker process).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

# Ordinary alerts keep Twilio's queue at most this many seconds long, so a life-safety text
# handed over after them waits at most this long behind them.
ORDINARY_HEADROOM = 2.0
# A held alert is looked at again at least this often (a Celery countdown stays well under
# the broker's visibility timeout).
MAX_HOLD = 120.0
# A text needs at least this long in Twilio's queue to be worth handing over.
MIN_VALIDITY = 5
# A life-safety tip's later texts (its first one went) are handed over when their place is
# this close to the front of Twilio's queue (the pool's and the recipient's clocks), so a
# later tip's first text finds Twilio's queues short.
URGENT_HEADROOM = 1.0
# A tip whose text went this long ago has its next text (a repeat round) go first again.
GROUP_TTL = 60.0
# A tip's first text to ask, when its recipient already has more than FIRST_SHORT s of texts
# handed to Twilio, waits DEFER s so that a text of the same tip to a less busy recipient
# (asking at the same moment) can go first; then it goes anyway if none did.
FIRST_SHORT = 1.0
DEFER = 0.5
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
    """``ok``: hand it over now (it should wait ``wait`` s in Twilio's queue). ``held``: it has
    a place in tipline's line, its turn comes in ``wait`` s. Neither: it would wait ``wait`` s,
    longer than it may (it was given no place)."""

    ok: bool
    wait: float
    held: bool = False


class Pacer(Protocol):
    def admit(self, recipient: str, segments: int, limit: float, *, ticket: str | None = None,
              max_wait: float = 0.0, ahead: bool = False, group: str | None = None
              ) -> Admission:
        """Take a place in the senders' queue if it is at most ``limit`` s long now.

        Without ``ticket`` (life-safety) that is all. With one (the delivery's id), an alert
        that cannot go now is given a turn in tipline's own line, after those already
        waiting, unless that turn is more than ``max_wait`` s away; when it comes back at its
        turn it goes. With ``ahead`` too (life-safety that must not fail for the queue), it
        takes its place in Twilio's queue now, before every ordinary alert waiting in
        tipline, and is held only until that place is ``limit`` s from the front.

        ``group`` (a life-safety text, with its ``ticket``: the tip it alerts): the group's
        first text to be handed over goes as above (without ``ahead``: as without a ticket);
        a later one, within ``GROUP_TTL`` of it, goes as with ``ahead`` and a ``limit`` of
        at most ``URGENT_HEADROOM``. The first to ask is held ``DEFER`` s (once) when more
        than ``FIRST_SHORT`` s of texts to its recipient are already in Twilio's queue, so
        that a text of the group to a less busy recipient can go first."""
        ...


@dataclass(frozen=True)
class Rate:
    """Segments per second of one sender, and how many senders the pool has."""

    sender_mps: float = 1.0
    senders: int = 1

    def costs(self, n_segments: int) -> tuple[float, float]:
        """Seconds of the pool's queue and of one sender's queue a text takes."""
        return (n_segments / (self.sender_mps * self.senders), n_segments / self.sender_mps)


# A held alert that comes back this early (a worker's clock, the broker's delay) has its turn.
EARLY = 0.5
# ... and goes if Twilio's queue is at most this much over its limit.
SLACK = 1.0


class LocalPacer:
    """The clocks in this process (the embedded default: one worker process)."""

    def __init__(self, rate: Rate, clock: Any = time.monotonic) -> None:
        self.rate = rate
        self.clock = clock
        self._pool = 0.0
        self._pool_line = 0.0
        self._recipients: dict[str, float] = {}
        self._lines: dict[str, float] = {}
        self._tickets: dict[str, float] = {}
        # Handed to Twilio (not counting places taken ahead and held in tipline): the end
        # of each recipient's texts in Twilio's queue.
        self._sent: dict[str, float] = {}
        # group -> ("went" | "wait:<ticket>", when that lapses)
        self._groups: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def admit(self, recipient: str, segments: int, limit: float, *, ticket: str | None = None,
              max_wait: float = 0.0, ahead: bool = False, group: str | None = None
              ) -> Admission:
        pool_cost, one_cost = self.rate.costs(segments)
        with self._lock:
            now = self.clock()
            pool = max(now, self._pool)
            one = max(now, self._recipients.get(recipient, 0.0))
            backlog = max(pool, one) - now
            if group is not None and ticket is not None:
                state, lapses = self._groups.get(group, ("", 0.0))
                state = state if lapses > now else ""
                busy = max(now, self._sent.get(recipient, 0.0)) - now > FIRST_SHORT
                if state == "went" or ticket in self._tickets:
                    ahead, limit = True, min(limit, URGENT_HEADROOM)  # a later text
                elif busy and state != f"wait:{ticket}":
                    if not state:  # the first to ask: a less busy recipient may go first
                        self._groups[group] = (f"wait:{ticket}", now + GROUP_TTL)
                        return Admission(False, DEFER, held=True)
                    ahead, limit = True, min(limit, URGENT_HEADROOM)  # another may go first
                elif not ahead:
                    ticket = None  # the group's first: now, as life-safety goes

            def take(handed: bool = True) -> Admission:
                self._pool = pool + pool_cost
                self._recipients[recipient] = one + one_cost
                if handed:
                    self._hand(recipient, one_cost, now, group)
                return Admission(True, backlog)

            if ticket is None:
                return take() if backlog <= limit else Admission(False, backlog)
            if ahead:
                return self._ahead(ticket, recipient, one_cost, now, backlog, limit, max_wait,
                                   take, group)
            pool_line = max(now, self._pool_line)
            line = max(now, self._lines.get(recipient, 0.0))
            mine = self._tickets.get(ticket)
            if mine is not None:
                if mine > now + EARLY:
                    return Admission(False, mine - now, held=True)
                if backlog <= limit + SLACK:
                    del self._tickets[ticket]
                    return take()
            elif backlog <= limit and pool_line <= now and line <= now:
                return take()
            turn = max(now + backlog - limit, pool_line, line)
            if turn - now > max_wait:
                self._tickets.pop(ticket, None)
                return Admission(False, turn - now)
            self._pool_line = max(pool_line, turn) + pool_cost
            self._lines[recipient] = max(line, turn) + one_cost
            self._tickets[ticket] = turn
            if len(self._tickets) > 100_000:  # forget turns long past
                self._tickets = {k: v for k, v in self._tickets.items() if v > now - 3600}
            return Admission(False, turn - now, held=True)

    def _hand(self, recipient: str, cost: float, now: float, group: str | None) -> None:
        """Handed to Twilio: the recipient's texts there grow, and its group has gone (a
        place taken and held in tipline does neither: the tip's first text is still to go)."""
        self._sent[recipient] = max(now, self._sent.get(recipient, 0.0)) + cost
        if group is not None:
            self._groups[group] = ("went", now + GROUP_TTL)
            if len(self._groups) > 10_000:
                self._groups = {k: v for k, v in self._groups.items() if v[1] > now}

    def _ahead(self, ticket: str, recipient: str, one_cost: float, now: float, backlog: float,
               limit: float, max_wait: float, take: Callable[..., Admission],
               group: str | None) -> Admission:
        """Life-safety that waits rather than fails: its place in Twilio's queue is taken
        at the first ask (the clocks advance then), so at its turn it just goes."""
        mine = self._tickets.get(ticket)
        if mine is not None:
            if mine > now + EARLY:
                return Admission(False, mine - now, held=True)
            del self._tickets[ticket]
            self._hand(recipient, one_cost, now, group)
            return Admission(True, limit)
        if backlog <= limit:
            return take()
        turn = now + backlog - limit
        if turn - now > max_wait:
            return Admission(False, backlog)
        take(False)  # its place, not yet handed over
        self._tickets[ticket] = turn
        return Admission(False, turn - now, held=True)


# Atomic in Redis, on Redis's clock (every worker process agrees on "now"). KEYS: the pool's
# and the recipient's queue clocks, the pool's and the recipient's line in tipline, the
# delivery's turn, the group's mark. ARGV: pool cost, recipient cost, limit, ttl ms,
# 'now' | 'ticket' | 'ahead', max wait, EARLY, SLACK, URGENT_HEADROOM ('' without a group),
# GROUP_TTL ms, the ticket, FIRST_SHORT, DEFER; KEYS[7]: the end of the recipient's texts
# handed to Twilio.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local pc, oc, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local mode = ARGV[5]
local pool = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
local one = math.max(now, tonumber(redis.call('GET', KEYS[2]) or '0'))
local backlog = math.max(pool, one) - now
local function hand()
  local sent = math.max(now, tonumber(redis.call('GET', KEYS[7]) or '0'))
  redis.call('SET', KEYS[7], tostring(sent + oc), 'PX', ARGV[4])
  if ARGV[9] ~= '' then redis.call('SET', KEYS[6], 'went', 'PX', ARGV[10]) end
end
if ARGV[9] ~= '' then
  local state = redis.call('GET', KEYS[6]) or ''
  local sent = math.max(now, tonumber(redis.call('GET', KEYS[7]) or '0'))
  local busy = sent - now > tonumber(ARGV[12])
  if state == 'went' or redis.call('EXISTS', KEYS[5]) == 1 then
    mode = 'ahead'
    limit = math.min(limit, tonumber(ARGV[9]))
  elseif busy and state ~= 'wait:' .. ARGV[11] then
    if state == '' then
      redis.call('SET', KEYS[6], 'wait:' .. ARGV[11], 'PX', ARGV[10])
      return {2, ARGV[13]}
    end
    mode = 'ahead'
    limit = math.min(limit, tonumber(ARGV[9]))
  elseif mode ~= 'ahead' then
    mode = 'now'
  end
end
local function take(handed)
  redis.call('SET', KEYS[1], tostring(pool + pc), 'PX', ARGV[4])
  redis.call('SET', KEYS[2], tostring(one + oc), 'PX', ARGV[4])
  if handed then hand() end
  return {1, tostring(backlog)}
end
if mode == 'now' then
  if backlog <= limit then return take(true) end
  return {0, tostring(backlog)}
end
if mode == 'ahead' then
  local held = tonumber(redis.call('GET', KEYS[5]) or '-1')
  if held >= 0 then
    if held > now + tonumber(ARGV[7]) then return {2, tostring(held - now)} end
    redis.call('DEL', KEYS[5])
    hand()
    return {1, tostring(limit)}
  end
  if backlog <= limit then return take(true) end
  if backlog - limit > tonumber(ARGV[6]) then return {0, tostring(backlog)} end
  take(false)
  redis.call('SET', KEYS[5], tostring(now + backlog - limit), 'PX', ARGV[4])
  return {2, tostring(backlog - limit)}
end
local pline = math.max(now, tonumber(redis.call('GET', KEYS[3]) or '0'))
local oline = math.max(now, tonumber(redis.call('GET', KEYS[4]) or '0'))
local mine = tonumber(redis.call('GET', KEYS[5]) or '-1')
if mine >= 0 then
  if mine > now + tonumber(ARGV[7]) then return {2, tostring(mine - now)} end
  if backlog <= limit + tonumber(ARGV[8]) then
    redis.call('DEL', KEYS[5])
    return take(true)
  end
elseif backlog <= limit and pline <= now and oline <= now then
  return take(true)
end
local turn = math.max(now + backlog - limit, pline, oline)
if turn - now > tonumber(ARGV[6]) then
  redis.call('DEL', KEYS[5])
  return {0, tostring(turn - now)}
end
redis.call('SET', KEYS[3], tostring(math.max(pline, turn) + pc), 'PX', ARGV[4])
redis.call('SET', KEYS[4], tostring(math.max(oline, turn) + oc), 'PX', ARGV[4])
redis.call('SET', KEYS[5], tostring(turn), 'PX', ARGV[4])
return {2, tostring(turn - now)}
"""


class RedisPacer:
    """The clocks in Redis, shared by every worker process."""

    def __init__(self, rate: Rate, url: str, prefix: str = "tipline:pace:sms") -> None:
        import redis

        self.rate = rate
        self.prefix = prefix
        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._script = self._redis.register_script(_ADMIT)

    def admit(self, recipient: str, segments: int, limit: float, *, ticket: str | None = None,
              max_wait: float = 0.0, ahead: bool = False, group: str | None = None
              ) -> Admission:
        import hashlib

        pool_cost, one_cost = self.rate.costs(segments)
        # The recipient is a staff number; keyed by a digest anyway so Redis holds no number.
        who = hashlib.sha256(recipient.encode()).hexdigest()[:16]
        p = self.prefix
        grouped = group is not None and ticket is not None
        code, value = self._script(
            keys=[f"{p}:pool", f"{p}:to:{who}", f"{p}:line", f"{p}:line:{who}",
                  f"{p}:turn:{ticket or '-'}", f"{p}:group:{group if grouped else '-'}",
                  f"{p}:sent:{who}"],
            args=[pool_cost, one_cost, limit, _CLOCK_TTL_MS,
                  ("ahead" if ahead else "ticket") if ticket else "now", max_wait, EARLY, SLACK,
                  URGENT_HEADROOM if grouped else "", int(GROUP_TTL * 1000), ticket or "",
                  FIRST_SHORT, DEFER])
        code = int(code)
        return Admission(code == 1, float(value), held=code == 2)


def build_pacer(rate: Rate, broker_url: str, what: str = "sms") -> Pacer:
    """Redis's clocks when the broker is Redis (shared by all workers), else this process's;
    ``what`` keeps the texts' and the calls' clocks apart."""
    if broker_url.startswith(("redis://", "rediss://")):
        return RedisPacer(rate, broker_url, prefix=f"tipline:pace:{what}")
    return LocalPacer(rate)
