"""Sending the alert outbox: one email (smtplib) and one signed JSON POST per alert, retried and logged.

The dispatcher runs this in a thread of its own, so an SMTP server or alert URL that hangs never holds a
delivery up. Rows are leased like events (a worker killed mid-send loses nothing: the lease expires and
another worker sends the alert), and recorded one by one.
"""
import json
import logging
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import unquote, urlsplit

from flask import Flask
from sqlalchemy import bindparam, or_, select, update

from ..clock import utcnow
from ..extensions import db
from ..signing import signature_headers
from .claim import Resolve
from .models import FAILED, PENDING, SENT, Alert
from .request import USER_AGENT
from .send import Sender

log = logging.getLogger(__name__)

ALERT_HEADER = "X-Qlar-Alert"
BATCH = 20
A = Alert.__table__
_FREE = or_(A.c.lease_until.is_(None), A.c.lease_until < bindparam("now"))
_DUE = (select(A.c.id).where(A.c.status == PENDING, A.c.next_attempt_at <= bindparam("now"), _FREE)
        .order_by(A.c.next_attempt_at, A.c.id).limit(BATCH))
_LEASE = (update(A).where(A.c.id.in_(bindparam("ids", expanding=True)), A.c.status == PENDING, _FREE)
          .values(lease_until=bindparam("until")).returning(A.c.id))


@dataclass(frozen=True)
class Smtp:
    """Where mail goes, from QLAR_SMTP_URL: smtp://host:port, smtp+starttls://user:pass@host:587, smtps://…"""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> "Smtp":
        """Parse QLAR_SMTP_URL; ValueError names what is wrong (never echoing a password)."""
        parts = urlsplit(url)
        defaults = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
        if parts.scheme not in defaults or not parts.hostname:
            raise ValueError("QLAR_SMTP_URL must look like smtp://host:port, smtp+starttls://user:pass@host:587 "
                             "or smtps://user:pass@host:465.")
        return cls(parts.scheme, parts.hostname, parts.port or defaults[parts.scheme],
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None)


class Alerter:
    """Sends due alerts; one per dispatcher, used by its alert thread (or inline: send_due)."""

    def __init__(self, *, smtp_url: str | None, mail_from: str, sender: Sender, resolve: Resolve,
                 schedule: list[float], timeout: float, extra_cas: list[str]):
        self.smtp = Smtp.from_url(smtp_url) if smtp_url else None
        self.mail_from, self.sender, self.resolve = mail_from, sender, resolve
        self.schedule, self.timeout, self.extra_cas = schedule, timeout, extra_cas

    def send_due(self) -> int:
        """Send every alert row due now (in an app context); returns how many were tried."""
        now = utcnow()
        ids = list(db.session.scalars(_DUE, {"now": now}))
        until = now + timedelta(seconds=4 * self.timeout + 30)  # longer than one email or POST can take
        leased = set(db.session.scalars(_LEASE, {"ids": ids, "now": now, "until": until})) if ids else set()
        db.session.commit()
        for alert_id in sorted(leased):
            alert = db.session.get(Alert, alert_id)
            error, code = self._send(alert)
            self._record(alert, error, code)
        return len(leased)

    def run(self, app: Flask, stop: threading.Event, wake: threading.Event, poll: float) -> None:
        """The alert thread: send the alert outbox apart from deliveries, woken when a batch raised alerts
        (`wake`), else polling, backing off while the database is lost (the rows wait)."""
        failures = 0
        while not stop.is_set():
            wake.clear()
            try:
                with app.app_context():
                    self.send_due()
                failures = 0
            except Exception:
                failures += 1
                log.exception("sending alerts failed; retrying")
            wake.wait(min(30.0, poll * 2**failures))

    def _send(self, alert: Alert) -> tuple[str | None, int | None]:
        """Send one row over its channel: (error or None, HTTP status of a POST)."""
        try:
            if alert.channel == "email":
                return self._email(alert), None
            return self._post(alert)
        except Exception as exc:  # an alert must never take the dispatcher down: record and retry
            return f"{exc.__class__.__name__}: {str(exc)[:300]}", None

    def _email(self, alert: Alert) -> str | None:
        if self.smtp is None:
            return "QLAR_SMTP_URL is not set, so no alert email can be sent."
        document = json.loads(alert.body)
        message = EmailMessage()
        message["Subject"], message["From"], message["To"] = alert.subject, self.mail_from, alert.target
        message["Date"], message["Message-ID"] = formatdate(), make_msgid(domain="qlar.invalid")
        details = "\n".join(f"{key}: {value}" for key, value in document.items() if key != "text")
        message.set_content(f"{document['text']}\n\n{details}\n")
        context = ssl.create_default_context()
        for path in self.extra_cas:
            context.load_verify_locations(path)
        smtp = self.smtp
        if smtp.scheme == "smtps":
            client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=self.timeout, context=context)
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=self.timeout)
        with client:
            if smtp.scheme == "smtp+starttls":
                client.starttls(context=context)
            if smtp.username:
                client.login(smtp.username, smtp.password or "")
            client.send_message(message)
        return None

    def _post(self, alert: Alert) -> tuple[str | None, int | None]:
        """The alert as JSON, signed like a delivery with the endpoint's current key (unsigned if it has none
        that can be decrypted: the alert about a master key must still go out)."""
        target = self.resolve({alert.endpoint_id})[alert.endpoint_id]
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, ALERT_HEADER: alert.type}
        if target.keys and not target.held:
            headers.update(signature_headers(target.keys, alert.alert_id, int(time.time()), alert.body))
        outcome = self.sender.post(alert.target, alert.body, headers)
        if outcome.ok:
            return None, outcome.status
        return outcome.error or f"HTTP {outcome.status}", outcome.status

    def _record(self, alert: Alert, error: str | None, code: int | None) -> None:
        now = utcnow()
        alert.tries += 1
        alert.last_status_code, alert.last_error, alert.lease_until = code, error, None
        if error is None:
            alert.status, alert.sent_at, alert.next_attempt_at = SENT, now, None
            log.info("alert %s (%s) sent by %s", alert.alert_id, alert.type, alert.channel)
        elif alert.tries > len(self.schedule):
            alert.status, alert.next_attempt_at = FAILED, None
            log.error("alert %s (%s) by %s failed for good after %d tries: %s", alert.alert_id, alert.type,
                      alert.channel, alert.tries, error)
        else:
            alert.next_attempt_at = now + timedelta(seconds=self.schedule[alert.tries - 1])
            log.warning("alert %s (%s) by %s not sent (try %d): %s; retrying at %s", alert.alert_id, alert.type,
                        alert.channel, alert.tries, error, alert.next_attempt_at)
        db.session.commit()
