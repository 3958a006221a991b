"""Recording audit entries (the caller commits, so the entry lands with the change) and reading them back:
readable action names, filters (actor, action, UTC days) and keyset paging both ways for the Audit log page."""
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from flask import g, has_app_context

from ..clock import day_argument
from ..crypto import redact
from ..errors import DomainError
from ..extensions import db
from .models import AuditEntry

PAGE_SIZE = 50
CLI_ACTOR = "cli"  # who the audit log says acted for every `flask qlar` command
CURSOR = re.compile(r"[0-9]{1,18}")

# Every action code record() is called with (grep "record(" in qlar_console), as the page names it.
ACTION_NAMES = {
    "agent.environment_added": "Environment added",
    "api.call": "API call",
    "api_token.created": "API token created",
    "api_token.revoked": "API token revoked",
    "data.synthetic_purged": "Synthetic data purged",
    "deliveries.resend_failed": "Failed events resent",
    "event.resent": "Event resent",
    "master_key.rotated": "Master key rotated",
    "settings.saved": "Settings saved",
    "simulation.cancelled": "Simulation cancelled",
    "simulation.started": "Simulation started",
    "user.2fa_disabled": "Two-factor authentication turned off",
    "user.2fa_enabled": "Two-factor authentication turned on",
    "user.2fa_recovery_used": "Recovery code used",
    "user.2fa_reset": "Two-factor authentication reset",
    "user.created": "User created",
    "user.login": "Logged in",
    "user.login_failed": "Login failed",
    "user.logout": "Logged out",
    "user.password_changed": "Password changed",
    "user.role_changed": "Role changed",
    "user.signed_out_everywhere": "Signed out everywhere",
    "webhook.alerts_changed": "Alert recipients changed",
    "webhook.disabled": "Webhook switched off",
    "webhook.previous_secret_revoked": "Previous key revoked",
    "webhook.receiver_checked": "Receiver checked",
    "webhook.resumed": "Webhook resumed",
    "webhook.retry_schedule_changed": "Retry schedule changed",
    "webhook.secret_regenerated": "Key regenerated",
    "endpoint.added": "Endpoint added",
    "endpoint.saved": "Endpoint saved",
    "endpoint.removed": "Endpoint removed",
    "webhook.secret_revealed": "Key revealed",
}


class InvalidAuditFilter(DomainError):
    """A filter or page link in the Audit log's query string that the page cannot use; `field` is its argument."""


def record(actor: str, action: str, details: str = "", *, agent_id=None, environment=None) -> AuditEntry:
    """Add an audit entry to the current transaction; details are redacted of any secret.

    An API call sets g.audit_via, so every entry it causes says which token made it.
    """
    entry = AuditEntry(
        actor=actor, action=action, agent_id=agent_id, environment=environment,
        details=redact(details).replace("\x00", "\\x00"),  # PostgreSQL text holds no NUL
        via=g.get("audit_via") if has_app_context() else None,
    )
    db.session.add(entry)
    if has_app_context():
        g.audit_recorded = True
    return entry


def action_name(code: str) -> str:
    """The readable name of an action code ("settings.saved" -> "Settings saved"); unknown codes are spelled out."""
    if code in ACTION_NAMES:
        return ACTION_NAMES[code]
    words = code.replace(".", " ").replace("_", " ").strip()
    return words[:1].upper() + words[1:]


@dataclass(frozen=True)
class AuditFilters:
    """What the log is narrowed to; None means any. Days are UTC and both ends are included."""

    actor: str | None = None
    action: str | None = None
    since: date | None = None
    until: date | None = None

    def as_args(self) -> dict[str, str]:
        """The filters as query-string arguments (unset ones left out), for page links that keep them."""
        args = {"actor": self.actor, "action": self.action,
                "from": self.since.isoformat() if self.since else None,
                "to": self.until.isoformat() if self.until else None}
        return {k: v for k, v in args.items() if v}


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: entries older than `before`, or newer than `after` (neither: the newest)."""

    before: int | None = None
    after: int | None = None


@dataclass(frozen=True)
class AuditPage:
    """One page of entries, newest first, and the cursors of the pages on either side (None: no such page)."""

    entries: list[AuditEntry]
    newer_after: int | None
    older_before: int | None


def _cursor(args, name: str) -> int | None:
    value = args.get(name)
    if value is None or value == "":
        return None
    if not CURSOR.fullmatch(value):
        raise InvalidAuditFilter(f"{name}={value!r} is not an entry number: use the Newer and Older links.", name)
    return int(value)


def parse_filters(args, known_actions) -> tuple[AuditFilters, Cursor]:
    """Check the page's query string; raises InvalidAuditFilter saying what is wrong and how to fix it.

    known_actions: the action codes the Action filter offers (see action_choices).
    """
    actor = (args.get("actor") or "").strip() or None
    action = (args.get("action") or "").strip() or None
    if actor is not None and (len(actor) > 80 or not actor.isprintable()):
        raise InvalidAuditFilter("Actor must be a user name of at most 80 printable characters.", "actor")
    if action is not None and action not in known_actions:
        raise InvalidAuditFilter(f"Unknown action {action!r}: choose one from the Action list.", "action")
    since = day_argument(args, "from", "From", InvalidAuditFilter)
    until = day_argument(args, "to", "To", InvalidAuditFilter)
    if since and until and since > until:
        raise InvalidAuditFilter(f"From ({since}) is after To ({until}): swap them.", "from")
    cursor = Cursor(_cursor(args, "before"), _cursor(args, "after"))
    if cursor.before is not None and cursor.after is not None:
        raise InvalidAuditFilter("A page starts before an entry or after one, not both: use the page links.", "after")
    return AuditFilters(actor, action, since, until), cursor


def action_choices() -> list[tuple[str, str]]:
    """(code, readable name) of every action the filter offers: the known ones and any other recorded, by name."""
    recorded = db.session.scalars(db.select(AuditEntry.action).distinct())
    codes = set(ACTION_NAMES) | set(recorded)
    return sorted(((code, action_name(code)) for code in codes), key=lambda choice: choice[1].lower())


def actors() -> list[str]:
    """Everyone who appears in the log, for the Actor filter."""
    return list(db.session.scalars(db.select(AuditEntry.actor).distinct().order_by(AuditEntry.actor)))


def _where(query, filters: AuditFilters):
    if filters.actor is not None:
        query = query.where(AuditEntry.actor == filters.actor)
    if filters.action is not None:
        query = query.where(AuditEntry.action == filters.action)
    if filters.since is not None:
        query = query.where(AuditEntry.at >= datetime.combine(filters.since, time()))
    if filters.until is not None:
        query = query.where(AuditEntry.at < datetime.combine(filters.until + timedelta(days=1), time()))
    return query


def _any(filters: AuditFilters, condition) -> bool:
    return db.session.scalar(_where(db.select(AuditEntry.id), filters).where(condition).limit(1)) is not None


def list_entries(filters: AuditFilters, cursor: Cursor = Cursor(), limit: int = PAGE_SIZE) -> AuditPage:
    """One page of matching entries, newest first, by keyset on the id (no OFFSET, so every page costs the same)."""
    query = _where(db.select(AuditEntry), filters).limit(limit + 1)
    if cursor.after is not None:
        rows = list(db.session.scalars(query.where(AuditEntry.id > cursor.after).order_by(AuditEntry.id.asc())))
        entries = rows[:limit][::-1]
        newer = len(rows) > limit
        older = _any(filters, AuditEntry.id < (entries[-1].id if entries else cursor.after + 1))
    else:
        if cursor.before is not None:
            query = query.where(AuditEntry.id < cursor.before)
        rows = list(db.session.scalars(query.order_by(AuditEntry.id.desc())))
        entries = rows[:limit]
        older = len(rows) > limit
        newer = cursor.before is not None and _any(
            filters, AuditEntry.id > (entries[0].id if entries else cursor.before - 1))
    return AuditPage(entries,
                     entries[0].id if newer and entries else None,
                     entries[-1].id if older and entries else None)
