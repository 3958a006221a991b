"""Operations endpoints: /healthz (process up), /readyz (database and migrations), /metrics (Prometheus)."""
import hmac
from datetime import timedelta

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Blueprint, Response, current_app, jsonify, request
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import case, func, select, text

from .clock import utcnow
from .config import is_development
from .engine.housekeeping import live_workers
from .engine.models import PENDING, STATUSES, Attempt, Event
from .extensions import db
from .security import csrf
from .settings.alerting import health_counts

bp = Blueprint("observability", __name__)
csrf.exempt(bp)
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30)


@bp.get("/healthz")
def healthz():
    """The process is up."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Ready when the database answers and its schema is at the newest migration."""
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            current = set(MigrationContext.configure(connection).get_current_heads())
    except Exception as exc:  # any failure to reach the database means not ready
        return jsonify(status="unavailable", database=f"unreachable: {exc.__class__.__name__}"), 503
    migrate = current_app.extensions["migrate"]
    heads = set(ScriptDirectory.from_config(migrate.migrate.get_config(migrate.directory)).get_heads())
    if current != heads:
        behind = f"at {sorted(current) or 'none'}, newest is {sorted(heads)}: run flask db upgrade"
        return jsonify(status="unavailable", database="ok", migrations=behind), 503
    return jsonify(status="ok", database="ok", migrations="current")


@bp.get("/metrics")
def metrics():
    """Prometheus metrics, computed from the database at scrape time (so any process can serve them)."""
    refusal = metrics_refusal(current_app.config, request.headers.get("Authorization", ""),
                              production=not is_development(current_app))
    if refusal:
        return refusal
    registry = CollectorRegistry()
    registry.register(_DatabaseCollector())
    return Response(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


def metrics_refusal(config, offered: str, *, production: bool) -> Response | None:
    """Why this scrape is refused (401/403, saying what to set), or None when it may read the metrics.

    With METRICS_TOKEN set, the scrape must send it as a bearer token. Without one, development serves
    the metrics openly and production refuses them unless METRICS_PUBLIC is set.
    """
    token = config.get("METRICS_TOKEN")
    if token:
        if hmac.compare_digest(offered.encode(), f"Bearer {token}".encode()):
            return None
        return Response("/metrics needs the token set in QLAR_METRICS_TOKEN: send "
                        "\"Authorization: Bearer <token>\" (Prometheus: authorization.credentials).\n",
                        401, {"WWW-Authenticate": 'Bearer realm="metrics"'}, mimetype="text/plain")
    if production and not config.get("METRICS_PUBLIC"):
        return Response("/metrics is off in production until you choose: set QLAR_METRICS_TOKEN to a long "
                        "random value and scrape with \"Authorization: Bearer <token>\", or set "
                        "QLAR_METRICS_PUBLIC=1 to serve it to anyone who can reach this address.\n",
                        403, mimetype="text/plain")
    return None


class _DatabaseCollector:
    """Deliveries by outcome, attempt durations, queue depth, oldest pending age, workers alive, endpoint health."""

    def collect(self):
        now = utcnow()
        outcomes = GaugeMetricFamily("qlar_deliveries", "Events by delivery outcome.", labels=["outcome"])
        counts = dict(db.session.execute(select(Event.status, func.count()).group_by(Event.status)).all())
        for status in STATUSES:
            outcomes.add_metric([status], counts.get(status, 0))
        yield outcomes
        yield GaugeMetricFamily("qlar_queue_depth", "Events waiting to be delivered.", value=counts.get(PENDING, 0))
        # Per endpoint, only those with events waiting: at most the endpoints there are (QLAR_MAX_ENDPOINTS a pair)
        by_endpoint = GaugeMetricFamily("qlar_endpoint_queue_depth", "Events waiting to be delivered, per endpoint "
                                        "(endpoints with none waiting are left out).", labels=["endpoint"])
        for endpoint_id, count in db.session.execute(select(Event.endpoint_id, func.count())
                                                     .where(Event.status == PENDING).group_by(Event.endpoint_id)):
            by_endpoint.add_metric([endpoint_id], count)
        yield by_endpoint
        oldest = db.session.scalar(select(func.min(Event.created_at)).where(Event.status == PENDING))
        yield GaugeMetricFamily("qlar_oldest_pending_age_seconds", "Age of the oldest pending event.",
                                value=(now - oldest).total_seconds() if oldest else 0)
        yield self._durations(now)
        workers = live_workers(max(30.0, 2 * float(current_app.config["TIMEOUT_SECONDS"])))
        yield GaugeMetricFamily("qlar_workers_alive", "Dispatcher processes with a recent heartbeat.",
                                value=len(workers))
        endpoints = GaugeMetricFamily("qlar_endpoints", "Webhook endpoints by health.", labels=["state"])
        for state, count in health_counts().items():
            endpoints.add_metric([state], count)
        yield endpoints
        db.session.commit()

    @staticmethod
    def _durations(now) -> HistogramMetricFamily:
        """Attempt durations over the kept traces, bucketed in one query."""
        seconds = Attempt.duration_ms / 1000.0
        columns = [func.sum(case((seconds <= bound, 1), else_=0)) for bound in DURATION_BUCKETS]
        row = db.session.execute(
            select(func.count(), func.coalesce(func.sum(seconds), 0), *columns)
            .where(Attempt.duration_ms.is_not(None), Attempt.started_at >= now - timedelta(days=30))
        ).one()
        total, total_seconds, *cumulative = row
        buckets = [(str(bound), int(value or 0)) for bound, value in zip(DURATION_BUCKETS, cumulative, strict=True)]
        histogram = HistogramMetricFamily("qlar_attempt_duration_seconds", "Duration of delivery attempts.")
        histogram.add_metric([], buckets + [("+Inf", int(total))], float(total_seconds))
        return histogram
