"""The hand-off between a worker's coordinator and its sender threads: claimed events on their way through.

An event is queued (claimed, waiting for a sender), then sending, then done (its Try waits to be recorded).
Only the coordinator claims and records; the senders only take queued events and hand back their tries.
The hand-off also says when the coordinator is worth waking: when the queue runs low, when enough tries
wait to make a batch, or when nothing else is in flight (a lone event is recorded at once). Waking it
after every send would make it claim and record in batches of one, and its per-batch cost would then
be paid per event.
"""
import threading
from collections import Counter, deque
from collections.abc import Iterable

from .claim import Work
from .record import Try


class Handoff:
    """Claimed work of one worker process, shared by its coordinator and senders under one lock."""

    def __init__(self, senders: int, per_endpoint: int, capacity: int):
        self.senders, self.per_endpoint, self.capacity = senders, per_endpoint, capacity
        self.low = max(1, senders // 2)  # takable queued events below which the coordinator claims more
        self._queued: deque[Work] = deque()
        self._sending: Counter = Counter()  # endpoint id -> sends in progress
        self._done: list[Try] = []
        self._turn = threading.Condition()

    def room(self) -> tuple[int, Counter]:
        """(how many events to claim now, the events per endpoint claimed and not yet sent: queued or sending).

        None while the senders still have enough to take (queued events whose endpoint has a free send):
        a claim of a few would cost as much as a claim of many.
        """
        with self._turn:
            claimed = Counter(work.endpoint_id for work in self._queued) + self._sending
            room = self.capacity - sum(claimed.values()) if self._takable() < self.low else 0
        return room, claimed

    def _takable(self) -> int:
        """Queued events a sender could start now (holding _turn)."""
        return sum(1 for work in self._queued if self._sending[work.endpoint_id] < self.per_endpoint)

    def unfinished(self) -> bool:
        """Whether any claimed event is still queued, being sent, or waiting to be recorded."""
        with self._turn:
            return bool(self._queued or +self._sending or self._done)

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
                for work in self._queued:
                    if self._sending[work.endpoint_id] < self.per_endpoint:
                        self._queued.remove(work)
                        self._sending[work.endpoint_id] += 1
                        return work
                if stop.is_set() and not self._queued:
                    return None
                self._turn.wait(poll)

    def sent(self, done: Try) -> bool:
        """A sender hands back its try; True when the coordinator should be woken now."""
        with self._turn:
            self._sending[done.work.endpoint_id] -= 1
            self._done.append(done)
            self._turn.notify()  # its endpoint has a free send again: one waiting sender may take the next
            return (self._takable() < self.low or len(self._done) >= self.capacity
                    or not (self._queued or +self._sending))

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
            unsent, self._queued = list(self._queued), deque()
        return unsent

    def wake_all(self) -> None:
        """Wake every waiting sender (stopping)."""
        with self._turn:
            self._turn.notify_all()
