"""Synthetic traffic for staging: full escalation flows at a chosen rate, and a delivery summary."""
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from ..engine.models import FAILED, PENDING, SUCCEEDED, Event
from ..extensions import db
from . import scenario as scenarios
from . import service

TOPICS = [("refund", "payment"), ("delivery delay", "shipping"), ("login failure", "account"),
          ("wrong item", "orders"), ("data deletion", "privacy"), ("overcharge", "billing")]
URGENCIES = ["low", "medium", "high", "critical"]
REASONS = ["User is angry and demands immediate refund", "User asks for a human agent",
           "Bot failed to answer three times", "User threatens to cancel the subscription"]


@dataclass
class Summary:
    """What a simulation produced and how its deliveries went."""

    flows: int
    events: int
    delivered: int
    failed: int
    pending: int
    p50_ms: float | None
    p99_ms: float | None

    def lines(self) -> list[str]:
        """The summary as printed by `flask qlar simulate`."""
        timing = (f"p50 {self.p50_ms:.0f} ms, p99 {self.p99_ms:.0f} ms" if self.p50_ms is not None
                  else "no deliveries yet")
        return [f"flows: {self.flows}", f"events: {self.events}", f"delivered: {self.delivered}",
                f"failed: {self.failed}", f"still pending: {self.pending}",
                f"time to delivery: {timing}"]


def run_flow(agent_id: str, environment: str, rng: random.Random) -> list[str]:
    """One full flow (created, claimed, sometimes released and reclaimed, completed); returns its escalation id."""
    topic, area = rng.choice(TOPICS)
    esc = service.create_escalation(
        agent_id, environment, topic=topic, area=area, urgencyLevel=rng.choice(URGENCIES), reason=rng.choice(REASONS),
        synthetic=True,
    ).id
    service.claim(esc, f"supervisor-{rng.randint(1, 9)}")
    if rng.random() < 0.1:
        service.release(esc)
        service.claim(esc, f"supervisor-{rng.randint(1, 9)}")
    service.complete(esc, "Resolved by the qlar simulator")
    return esc


def due_in(index: int, started: float, rate: float | None) -> float:
    """Seconds until flow `index` is due at `rate` flows per second (0 or less: due now; always due without a rate)."""
    return started + index / rate - time.monotonic() if rate else 0.0


def pace(index: int, started: float, rate: float | None) -> None:
    """Sleep until flow `index` is due at `rate` flows per second (no wait without a rate)."""
    delay = due_in(index, started, rate)
    if delay > 0:
        time.sleep(delay)


def run_flows(agent_id: str, environment: str, flows: int, rate: float | None,
              script: scenarios.Scenario | None = None, *, rng: random.Random | None = None,
              done: list[str] | None = None, beat: Callable[[list[str]], None] = lambda done: None,
              sleep: Callable[[float], None] = time.sleep, beat_every: float = 5.0) -> list[str]:
    """The one simulate loop (page, API and CLI): `flows` flows (random, or the scenario's) at `rate` per second,
    each escalation id appended to `done` as it ends. `beat(done)` runs after each flow and every `beat_every`
    seconds of a slow rate's wait; `sleep` serves the scenario's step delays."""
    rng, done, started = rng or random.Random(), [] if done is None else done, time.monotonic()
    for index in range(flows):
        while due_in(index, started, rate) > beat_every:  # a slow rate: still alive
            time.sleep(beat_every)
            beat(done)
        pace(index, started, rate)
        done.append(scenarios.run_scenario_flow(agent_id, environment, script, sleep) if script
                    else run_flow(agent_id, environment, rng))
        beat(done)
    return done


def summarise(escalation_ids: list[str], wait_seconds: float) -> Summary:
    """Wait (up to wait_seconds) for the flows' deliveries to finish, then summarise them."""
    deadline = time.monotonic() + wait_seconds
    while True:
        events = _events(escalation_ids)
        if not any(e.status == PENDING for e in events) or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    latencies = sorted((e.delivered_at - e.created_at).total_seconds() * 1000
                       for e in events if e.status == SUCCEEDED and e.delivered_at)
    p50 = statistics.median(latencies) if latencies else None
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else None
    count = lambda status: sum(e.status == status for e in events)  # noqa: E731
    return Summary(len(escalation_ids), len(events), count(SUCCEEDED), count(FAILED), count(PENDING), p50, p99)


def _events(escalation_ids: list[str]) -> list[Event]:
    events = []
    for start in range(0, len(escalation_ids), 500):
        chunk = escalation_ids[start:start + 500]
        events += db.session.scalars(select(Event).where(Event.escalation_id.in_(chunk))).all()
    db.session.commit()  # end the read so the next poll sees the dispatcher's progress
    return events
