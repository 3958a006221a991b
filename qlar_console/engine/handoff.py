"""The hand-off between a worker's coordinator and its sender threads: claimed events on their way through.

An event is queued (claimed, waiting for a sender), then sending, then done (its Try waits to be recorded).
Only the coordinator claims and records; the senders only take queued events and hand back their tries.
The hand-off also says when the coordinator is worth waking: when the queue runs low, when enough tries
wait to make a batch, or when nothing else is in flight (a lone event is recorded at once). Waking it
after every send would make it claim and record in batches of one, and its per-batch cost would then
be paid per event.

Each endpoint has its share of the senders (`per_endpoint`). When borrowing is allowed (no
QLAR_ENDPOINT_CONCURRENCY set), an endpoint whose last answer came back fast may also use senders no
other endpoint's queued event can take, so one busy endpoint is sent to at the network's pace. A slow
endpoint keeps to its share and cannot stall the others: the moment an answer is slow (or times out),
the endpoint stops borrowing, and its queued events beyond what its share can send within their leases
are handed back to the coordinator to give up (claimed again later).
"""
import threading
from collections import Counter, deque
from collections.abc import Iterable

from .claim import Work
from .record import Try

FAST_MS = 1000  # an answer within this lets its endpoint borrow idle senders


class Handoff:
    """Claimed work of one worker process, shared by its coordinator and senders under one lock."""

    def __init__(self, senders: int, per_endpoint: int, capacity: int, *, borrow: bool = False):
        self.senders, self.per_endpoint, self.capacity, self.borrow = senders, per_endpoint, capacity, borrow
        self.low = max(1, senders // 2)  # takable queued events below which the coordinator claims more
        self.share_claims = capacity // senders * per_endpoint  # what an endpoint's share sends within a lease
        # a fast endpoint may have this many claimed: all the senders busy and as many queued as its share
        # (up to the capacity less one share for the others)
        self.wide_claims = max(self.share_claims, min(capacity - per_endpoint, self.share_claims + senders))
        self._queued: deque[Work] = deque()
        self._sending: Counter = Counter()  # endpoint id -> sends in progress
        self._fast: set[str] = set()  # endpoints that may borrow senders (only when borrowing is allowed)
        self._done: list[Try] = []
        self._returned: list[Work] = []  # queued events of an endpoint that turned slow, to give back
        self._turn = threading.Condition()

    def room(self) -> tuple[int, Counter, dict[str, int]]:
        """(how many events to claim now, the events per endpoint claimed and not yet sent: queued or sending,
        the claim limit of each endpoint allowed more than its share).

        No room while the senders still have enough to take (queued events whose endpoint has a free send):
        a claim of a few would cost as much as a claim of many.
        """
        with self._turn:
            claimed = Counter(work.endpoint_id for work in self._queued) + self._sending
            room = self.capacity - sum(claimed.values()) if self._takable() < self.low else 0
            wide = dict.fromkeys(self._fast, self.wide_claims)
        return room, claimed, wide

    def _may_send(self, endpoint_id: str, *, borrowing: bool = True) -> bool:
        """Whether a sender may start a send to the endpoint now (holding _turn)."""
        sending = self._sending[endpoint_id]
        return sending < self.per_endpoint or (borrowing and endpoint_id in self._fast and sending < self.senders)

    def _takable(self) -> int:
        """Queued events a sender could start now (holding _turn)."""
        return sum(1 for work in self._queued if self._may_send(work.endpoint_id))

    def unfinished(self) -> bool:
        """Whether any claimed event is still queued, being sent, or waiting to be recorded."""
        with self._turn:
            return bool(self._queued or +self._sending or self._done or self._returned)

    def queue(self, works: list[Work]) -> None:
        """Hand newly claimed events to the senders, in due order."""
        with self._turn:
            self._queued.extend(works)
            self._turn.notify(len(works))

    def take(self, stop: threading.Event, poll: float) -> Work | None:
        """A sender's next event: the oldest queued whose endpoint has a free send; None once stopping with
        nothing queued."""
        with self._turn:
            while True:
                work = self._next(borrowing=False) or (self._next(borrowing=True) if self._fast else None)
                if work:
                    self._queued.remove(work)
                    self._sending[work.endpoint_id] += 1
                    return work
                if stop.is_set() and not self._queued:
                    return None
                self._turn.wait(poll)

    def _next(self, *, borrowing: bool) -> Work | None:
        """The oldest queued event a sender may start: within its endpoint's share first, then borrowing."""
        return next((work for work in self._queued if self._may_send(work.endpoint_id, borrowing=borrowing)), None)

    def sent(self, done: Try) -> bool:
        """A sender hands back its try; True when the coordinator should be woken now."""
        with self._turn:
            endpoint_id = done.work.endpoint_id
            self._sending[endpoint_id] -= 1
            self._done.append(done)
            if self.borrow and done.outcome is not None:
                self._judge(endpoint_id, done.outcome)
            self._turn.notify()  # its endpoint has a free send again: one waiting sender may take the next
            return (self._takable() < self.low or len(self._done) >= self.capacity or bool(self._returned)
                    or not (self._queued or +self._sending))

    def _judge(self, endpoint_id: str, outcome) -> None:
        """After an answer: a fast one lets the endpoint borrow; a slow one ends that, and its queued events
        beyond its share's are handed back (holding _turn)."""
        if not outcome.timed_out and outcome.duration_ms < FAST_MS:
            self._fast.add(endpoint_id)
            return
        if endpoint_id not in self._fast:
            return
        self._fast.discard(endpoint_id)
        mine = [work for work in self._queued if work.endpoint_id == endpoint_id]
        excess = mine[max(0, self.share_claims - self._sending[endpoint_id]):]
        for work in excess:
            self._queued.remove(work)
        self._returned += excess

    def take_returned(self) -> list[Work]:
        """The queued events handed back by an endpoint that turned slow (the coordinator gives up their leases)."""
        with self._turn:
            returned, self._returned = self._returned, []
        return returned

    def take_done(self, claiming: bool) -> list[Try]:
        """The tries to record now (the coordinator records them, or gives them back on failure): all of them
        when it also claims, else only once a batch's worth waits or nothing else is in flight."""
        with self._turn:
            if not (claiming or len(self._done) >= self.capacity or not (self._queued or +self._sending)):
                return []
            done, self._done = self._done, []
        return done

    def give_back_done(self, done: Iterable[Try]) -> None:
        """Recording failed: keep the tries for the next round, before any that finished since."""
        with self._turn:
            self._done[:0] = done

    def take_queued(self) -> list[Work]:
        """Stopping: the events no sender has started (their leases are given back)."""
        with self._turn:
            unsent, self._queued, self._returned = [*self._queued, *self._returned], deque(), []
        return unsent

    def wake_all(self) -> None:
        """Wake every waiting sender (stopping)."""
        with self._turn:
            self._turn.notify_all()
