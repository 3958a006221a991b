"""Receiver conformance check: probes that tell whether an endpoint follows the integration guide.

Every probe carries `X-Qlar-Test: conformance` and the event type `qlar.conformance_check`, which no
receiver acts on, and goes through the engine's request builder and Sender (SSRF guard, TLS verification, timeouts).
"""
import json
import math
import secrets
import time
from dataclasses import asdict, dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import or_, select, update

from ..audit.service import record
from ..clock import utcnow
from ..crypto import generate_secret, secret_box
from ..engine.health import endpoints_of
from ..engine.models import Endpoint, SigningKeys
from ..engine.outbox import freeze
from ..engine.request import build_request
from ..engine.send import Outcome, Sender
from ..errors import DomainError
from ..extensions import db
from .check_diagnosis import diagnose_outcomes
from .keys import signing_secrets
from .models import EscalationSettings, ReceiverCheck
from .service import SettingsError

CHECK_EVENT = "qlar.conformance_check"
MIN_INTERVAL = timedelta(seconds=10)
CHECK_SECONDS = 30.0  # the whole check, every probe included (each probe also within QLAR_TIMEOUT_SECONDS)
REFUSED = (401, 403)
STALE_SECONDS = 3600  # rule 11: a webhook-timestamp this old must be refused


class CheckTooSoon(DomainError):
    """A check of this webhook ran less than MIN_INTERVAL ago; `retry_after` is the wait in whole seconds."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class RuleResult:
    """One rule of the scorecard: did the receiver behave, what was sent, what came back, how to fix it."""

    number: int
    rule: str
    required: bool
    passed: bool
    sent: str
    got: str
    fix: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _document(agent_id: str, environment: str, event_id: str, extra: bool = False) -> dict:
    document = {
        "eventId": event_id, "eventType": CHECK_EVENT, "timestamp": utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "agentId": agent_id, "environment": environment,
        "escalation": {"id": "esc-conformance-check", "threadId": "thread-conformance-check", "status": "Pending"},
        "sequence": 0,
    }
    if extra:
        document["futureField"] = {"added": "later"}
        document["escalation"]["futureField"] = ["unknown", 1]
    return document


def _got(outcome: Outcome) -> str:
    if outcome.status is None:
        return outcome.error or "no response"
    return f"HTTP {outcome.status}" + (f" in {outcome.duration_ms:.0f} ms" if outcome.duration_ms else "")


class _Prober:
    """Sends the probes of one check to one endpoint, keeping every outcome for the diagnosis."""

    def __init__(self, sender: Sender, url: str, agent_id: str, environment: str):
        self.sender, self.url = sender, url
        self.agent_id, self.environment = agent_id, environment
        self.outcomes: list[Outcome] = []
        self.deadline = time.monotonic() + CHECK_SECONDS

    def send(self, body: bytes, event_id: str, keys: list[str] | None, method: str = "POST",
             signed_body: bytes | None = None, timestamp: int | None = None) -> Outcome:
        """One probe, within what is left of the check's CHECK_SECONDS (not sent when nothing is left)."""
        left = self.deadline - time.monotonic()
        if left < 0.1:
            outcome = Outcome(0, error=f"Not sent: the check's {CHECK_SECONDS:g} s were used up by slow answers "
                                       "to the probes before it.", timed_out=True)
            self.outcomes.append(outcome)
            return outcome
        headers = build_request(event_id, CHECK_EVENT, body, keys or [], test="conformance", signed_body=signed_body,
                                timestamp=timestamp)
        outcome = self.sender.post(self.url, body, headers, method=method, timeout=left)
        self.outcomes.append(outcome)
        return outcome

    def new_probe(self, extra: bool = False) -> tuple[str, bytes]:
        event_id = f"evt_check{secrets.token_hex(8)}"
        return event_id, freeze(_document(self.agent_id, self.environment, event_id, extra))


def run_probes(sender: Sender, url: str, keys: list[str], agent_id: str, environment: str,
               expired_key: str | None = None) -> tuple[list[RuleResult], str | None]:
    """Probe the receiver at url; returns the scorecard (required rules first, advisory last) and its diagnosis."""
    p = _Prober(sender, url, agent_id, environment)
    results = []

    def rule(number, text, outcome, passed, sent, fix, required=True):
        results.append(RuleResult(number, text, required, passed, sent, _got(outcome), None if passed else fix))

    event_id, body = p.new_probe()
    first = p.send(body, event_id, keys)
    rule(1, "A correctly signed probe is accepted with 2xx", first, first.ok, "POST, signed with the current key",
         "Check the URL, the TLS certificate and that the receiver holds the current key (Copy), and answer 2xx.")
    again = p.send(body, event_id, keys)
    rule(2, "The same probe again (same eventId) is accepted with 2xx", again, again.ok,
         "the same POST again, same eventId",
         "Treat a repeated eventId as already processed and answer 2xx, so retries never fail.")
    event_id, body = p.new_probe()
    unsigned = p.send(body, event_id, None)
    rule(3, "No signature headers: refused with 401 or 403", unsigned, unsigned.status in REFUSED,
         "POST without X-Qlar-Signature or webhook-signature", "Reject requests without a signature header with 401.")
    event_id, body = p.new_probe()
    wrong = p.send(body, event_id, [generate_secret()])
    rule(4, "A wrong signature: refused with 401 or 403", wrong, wrong.status in REFUSED,
         "POST signed with a random key", "Compare the signature with HMAC-SHA256 of the body under your key; "
         "reject a mismatch with 401.")
    event_id, body = p.new_probe()
    tampered = body.replace(b"esc-conformance-check", b"esc-conformance-checK", 1)
    changed = p.send(tampered, event_id, keys, signed_body=body)
    rule(5, "The body changed by one byte after signing: refused with 401 or 403", changed,
         changed.status in REFUSED, "POST signed, then one byte of the body changed",
         "Verify the signature over the exact bytes received, and reject a mismatch with 401.")
    event_id, body = p.new_probe()
    reserialised = json.dumps(json.loads(body), indent=2).encode()
    spaced = p.send(reserialised, event_id, keys, signed_body=body)
    rule(6, "Re-serialised body with the original signature: refused", spaced, spaced.status in REFUSED,
         "POST of the same JSON with other whitespace, original signature",
         "Verify the raw request bytes, not JSON you parsed and serialised again.")
    get, put = p.send(b"", "evt_check_get", None, method="GET"), p.send(b"{}", "evt_check_put", None, method="PUT")
    methods_ok = not get.ok and not put.ok and get.status is not None and put.status is not None
    rule(7, "GET and PUT are answered with a non-2xx (ideally 405)", get, methods_ok, "GET, then PUT",
         "Answer methods other than POST with 405 Method Not Allowed.")
    results[-1].got = f"GET: {_got(get)}; PUT: {_got(put)}"
    event_id, body = p.new_probe(extra=True)
    extra = p.send(body, event_id, keys)
    rule(8, "Unknown fields at every level are ignored (2xx)", extra, extra.ok,
         "POST with extra fields at the top level and inside escalation",
         "Ignore fields you do not know instead of rejecting the body.")
    if expired_key:
        event_id, body = p.new_probe()
        old = p.send(body, event_id, [expired_key])
        rule(9, "Signed only with the previous (expired) key: refused with 401 or 403", old, old.status in REFUSED,
             "POST signed only with the key replaced by Regenerate Key",
             "Drop the old key from your receiver once the grace period is over.")
    timely = first.status is not None and first.duration_ms < 2000  # any answer means TLS 1.2+ (the Sender's floor)
    small = len(first.body) < 4096
    advisory = f"{_got(first)}, TLS 1.2 or newer, {len(first.body)} byte body" if first.status else _got(first)
    rule(10, "Answers within 2 seconds, over TLS 1.2 or newer, with a small body", first, timely and small,
         "the first probe's timing, TLS version and body size",
         "Answer quickly (queue slow work), keep TLS 1.2+, and reply with a short body.", required=False)
    results[-1].got = advisory
    event_id, body = p.new_probe()
    stale = p.send(body, event_id, keys, timestamp=int(time.time()) - STALE_SECONDS)
    rule(11, "A probe whose webhook-timestamp is an hour old: refused with 401 or 403", stale,
         stale.status in REFUSED, "POST signed correctly for a webhook-timestamp one hour ago",
         "Verify webhook-signature and refuse a webhook-timestamp more than 5 minutes from now, so a captured "
         "request cannot be replayed (qlar signs every retry afresh). X-Qlar-Signature alone cannot be given "
         "a time window: then keep processed eventIds for longer than the retry schedule.", required=False)
    return results, diagnose_outcomes(p.outcomes)


def check_receiver(settings: EscalationSettings, actor: str) -> ReceiverCheck:
    """Run the probes against the saved webhook (at most once every 10 s per webhook); stored and audited."""
    if not settings.webhook_url or not settings.secret_ciphertext:
        raise SettingsError("Save the webhook with its URL first: the check probes the saved endpoint.")
    primary = endpoints_of({(settings.agent_id, settings.environment)})[(settings.agent_id, settings.environment)]
    check, verdict = _run_check(settings, settings.webhook_url, primary, actor)
    db.session.add(check)
    record(actor, "webhook.receiver_checked", f"{check.url}: {verdict}",
           agent_id=settings.agent_id, environment=settings.environment)
    db.session.commit()
    return check


def latest_check(settings: EscalationSettings) -> ReceiverCheck | None:
    """The newest stored check of this webhook."""
    return db.session.scalar(
        db.select(ReceiverCheck).filter_by(agent_id=settings.agent_id, environment=settings.environment)
        .order_by(ReceiverCheck.id.desc()).limit(1)
    )


def check_endpoint(ep: Endpoint, actor: str) -> ReceiverCheck:
    """Check receiver for an additional endpoint: the same probes against its URL with its key (at most once
    every 10 s per endpoint); audited. The scorecard is returned, not stored."""
    if not ep.url or not ep.secret_ciphertext:
        raise SettingsError("The endpoint has no URL yet: save it first.")
    check, verdict = _run_check(ep, ep.url, ep, actor)
    record(actor, "webhook.receiver_checked", f"endpoint {ep.id}: {check.url}: {verdict}",
           agent_id=ep.agent_id, environment=ep.environment)
    db.session.commit()
    return check


def _run_check(holder: SigningKeys, url: str, ep: Endpoint, actor: str) -> tuple[ReceiverCheck, str]:
    """Take the endpoint's check slot and probe url with the holder's keys (and its expired previous key, for
    rule 9); the scorecard (not added to the session) and the verdict the audit entry gives."""
    now = utcnow()
    expired = None
    if holder.previous_secret_ciphertext and not holder.previous_secret_active(now):
        expired = secret_box().decrypt(holder.previous_secret_ciphertext)
    keys = signing_secrets(holder, now)
    take_check_slot(ep.id, now)
    results, diagnosis = run_probes(current_app.extensions["qlar_dispatcher"].sender, url, keys, ep.agent_id,
                                    ep.environment, expired)
    passed = all(r.passed for r in results if r.required)
    failed = [str(r.number) for r in results if r.required and not r.passed]
    verdict = ("every required rule passed" if passed else f"failed rules {', '.join(failed)}") + (
        f"; {diagnosis}" if diagnosis else "")
    return ReceiverCheck(agent_id=ep.agent_id, environment=ep.environment, ran_at=now, ran_by=actor, url=url,
                         passed=passed, results=[r.as_dict() for r in results], diagnosis=diagnosis), verdict


def take_check_slot(endpoint_id: str, now) -> None:
    """Begin a check of the endpoint, or CheckTooSoon when one began less than MIN_INTERVAL ago. One conditional
    UPDATE decides, so two checks sent at once cannot both begin; committed, so no transaction stays open while
    the probes run."""
    EP = Endpoint.__table__
    began = db.session.execute(update(EP).where(
        EP.c.id == endpoint_id, or_(EP.c.check_started_at.is_(None), EP.c.check_started_at <= now - MIN_INTERVAL))
        .values(check_started_at=now)).rowcount
    if began:
        db.session.commit()
        return
    last = db.session.scalar(select(EP.c.check_started_at).where(EP.c.id == endpoint_id))
    db.session.rollback()
    ago = max(0.0, (now - last).total_seconds()) if last else 0.0
    wait = MIN_INTERVAL.total_seconds() - ago
    raise CheckTooSoon(f"A check ran {ago:.0f} s ago: wait {max(1, math.ceil(wait))} s before the next one.",
                       max(1, math.ceil(wait)))
