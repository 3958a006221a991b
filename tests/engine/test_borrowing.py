"""Endpoint shares by default (no QLAR_ENDPOINT_CONCURRENCY): a fast endpoint borrows idle senders, a slow one
keeps to half of them, and one that turns slow hands back what its share cannot send within the lease."""
import threading
import time
from collections import Counter

import pytest
from apps import dispose, make_app, point_webhook
from receiver import Receiver

from qlar_console.escalations import service as lifecycle

PAIR = ("agent-123", "production")


@pytest.fixture
def app(tmp_path, receiver, database_url):
    """agent-123 · production at the test receiver; leases long enough for three queued sends per sender."""
    app = make_app(tmp_path, SQLALCHEMY_DATABASE_URI=database_url, CA_BUNDLE=str(receiver.ca_file),
                   ALLOW_PRIVATE_TARGETS=True, TIMEOUT_SECONDS=2, LEASE_SECONDS=20, RETRY_SCHEDULE="200ms")
    point_webhook(app, receiver.url)
    yield app
    dispose(app)


class InFlight:
    """A receiver answer that keeps how many requests were in progress at once, and when each ran."""

    def __init__(self, delay):
        self.delay, self.busy, self.peak, self.spans, self.lock = delay, 0, 0, [], threading.Lock()

    def __call__(self, received):
        with self.lock:
            self.busy += 1
            self.peak = max(self.peak, self.busy)
            number = len(self.spans)
            self.spans.append([time.monotonic(), None])
        time.sleep(self.delay(number))
        with self.lock:
            self.busy -= 1
            self.spans[number][1] = time.monotonic()
        return 200, {}, 0


def create(app, count: int, pair=PAIR) -> None:
    with app.app_context():
        for _ in range(count):
            lifecycle.create_escalation(*pair)


def test_a_fast_endpoint_alone_uses_every_sender(app, receiver):
    answer = InFlight(lambda number: 0.05)
    receiver.respond = answer
    create(app, 24)
    app.extensions["qlar_dispatcher"].start(threads=4)
    receiver.wait_for(24)
    assert answer.peak > 2  # its share is 2 of the 4 senders; nobody else waited, so it borrowed the others
    assert answer.peak <= 4
    assert len({r.headers["Webhook-Id"] for r in receiver.requests}) == 24


def test_a_slow_endpoint_keeps_to_its_share_and_the_other_flows_past(app, receiver, tmp_path):
    (tmp_path / "fast").mkdir()
    fast = Receiver(tmp_path / "fast", ca=receiver.ca)
    try:
        point_webhook(app, fast.url, "staging")
        slow = InFlight(lambda number: 1.2)  # over a second: never fast enough to borrow
        receiver.respond = slow
        create(app, 6)
        create(app, 8, ("agent-123", "staging"))
        app.extensions["qlar_dispatcher"].start(threads=4)
        fast.wait_for(8, timeout=10)
        assert len(receiver.requests) <= 4  # the slow endpoint held its 2 senders at a time meanwhile
        receiver.wait_for(6, timeout=15)
        assert slow.peak == 2
    finally:
        fast.close()


def test_an_endpoint_that_turns_slow_gives_back_its_borrowed_senders_and_loses_nothing(app, receiver):
    answer = InFlight(lambda number: 0.02 if number < 12 else 1.2)  # then over a second each
    receiver.respond = answer
    create(app, 20)
    app.extensions["qlar_dispatcher"].start(threads=4)
    receiver.wait_for(20, timeout=30)
    time.sleep(0.3)
    first_slow_end = min(end for start, end in answer.spans[12:] if end)
    later = [(start, end) for start, end in answer.spans if start > first_slow_end]
    assert later, "some events were sent after the endpoint turned slow"
    overlap = max(sum(1 for s, e in later if s <= start < (e or float("inf"))) for start, _ in later)
    assert overlap <= 2  # back to its share once an answer was slow
    assert Counter(r.headers["Webhook-Id"] for r in receiver.requests).most_common(1)[0][1] == 1  # none twice


def test_the_handoff_hands_back_what_a_slowed_endpoint_cannot_send_within_its_leases():
    """4 senders, 3 queued each: a fast endpoint may have 10 claimed; once slow, only its share's 6 stay."""
    from qlar_console.engine.claim import Target, Work
    from qlar_console.engine.handoff import Handoff
    from qlar_console.engine.record import Try
    from qlar_console.engine.send import Outcome

    def work(n):
        return Work(f"evt_{n}", f"esc-{n}", 1, PAIR, "ep_a", f"evt_{n}", "created", b"{}", 0, 0, "scheduled",
                    Target(True, "https://example.test/"))

    handoff, stop = Handoff(4, 2, 12, borrow=True), threading.Event()
    handoff.queue([work(0)])
    handoff.sent(Try(handoff.take(stop, 0.01), Outcome(20.0, 200)))  # a fast answer: ep_a may borrow
    assert handoff.room()[2] == {"ep_a": 10}
    handoff.queue([work(n) for n in range(1, 11)])
    sending = [handoff.take(stop, 0.01) for _ in range(4)]  # all four senders, two of them borrowed
    assert [w.event_id for w in sending] == ["evt_1", "evt_2", "evt_3", "evt_4"]
    handoff.sent(Try(sending[0], Outcome(1500.0, 200)))  # slow: back to its share
    assert handoff.room()[2] == {}
    returned = handoff.take_returned()
    assert [w.event_id for w in returned] == ["evt_8", "evt_9", "evt_10"]  # 3 sending + 3 queued: its share's 6
    assert [w.event_id for w in handoff.take_queued()] == ["evt_5", "evt_6", "evt_7"]
