"""A retry schedule per agent · environment: the parser's limits, the card (admins only), the API, the CLI, the
queue-health panel, and deliveries that follow a pair's own schedule while other pairs keep the default."""
import time
from datetime import timedelta

import pytest
from apps import dispose, make_app, point_webhook
from helpers import PAGE, api_token, assert_problem, login, page_version, save_form

from qlar_console.audit.models import AuditEntry
from qlar_console.engine.models import Attempt, Event
from qlar_console.engine.retry import MAX_RETRIES, format_schedule, parse_schedule
from qlar_console.escalations import service as lifecycle
from qlar_console.extensions import db
from qlar_console.settings.schedule import canonical_schedule
from qlar_console.settings.service import SettingsChange, get_settings, save_settings

SETTINGS = "/api/v1/agents/agent-123/production/settings"
DEFAULT = "5s,5m,30m,2h,5h,10h,10h"  # the shipped QLAR_RETRY_SCHEDULE
STAGING = "/agents/agent-123/staging/escalation"


def shown(text: str) -> str:
    """Text as the page's HTML holds it (Jinja escapes the apostrophe; the tags are the template's)."""
    return text.replace("'", "&#39;")


def _schedule(app, env="production"):
    with app.app_context():
        return get_settings("agent-123", env).retry_schedule


def _audits(app) -> list[AuditEntry]:
    with app.app_context():
        return list(db.session.scalars(db.select(AuditEntry).filter_by(action="webhook.retry_schedule_changed")
                                       .order_by(AuditEntry.id)))


def _set(app, text, env="production"):
    with app.app_context():
        settings = get_settings("agent-123", env)
        save_settings(settings, SettingsChange.from_settings(settings, retry_schedule=text),
                      expected_version=settings.version, actor="test", as_admin=True)


# -- the one parser ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "message"), [
    ("", "needs at least one delay"),
    (" , ,", "needs at least one delay"),
    (",".join(["1s"] * (MAX_RETRIES + 1)), f"at most {MAX_RETRIES} delays, not {MAX_RETRIES + 1}"),
    ("5s,25h", "longer than 1d"),
    ("2d", "longer than 1d"),
    ("5x", "Not a duration: '5x'"),
    ("5", "Not a duration: '5'"),
    ("-1s", "Not a duration"),
])
def test_parse_schedule_limits(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        parse_schedule(text)


@pytest.mark.parametrize(("typed", "stored"), [
    ("1s,2s,5s", "1s,2s,5s"),
    (" 1000ms , 60s,1.5m, 7200s ", "1s,1m,90s,2h"),
    ("200ms,200ms", "200ms,200ms"),
    ("1000.5s", "1000500ms"),  # never an exponent such as 1.0005e+06ms, which would not parse back
    ("1d", "1d"),
    ("", None), ("  ", None), ("default", None), ("Default", None), (None, None),
])
def test_canonical_schedule(typed, stored):
    assert canonical_schedule(typed) == stored
    if stored:
        assert format_schedule(parse_schedule(stored)) == stored


def test_canonical_text_fits_the_column():
    with pytest.raises(ValueError, match="at most 200 characters"):
        canonical_schedule(",".join(["86399.123456s"] * MAX_RETRIES))


# -- the card ----------------------------------------------------------------------------------------------------

def test_admin_saves_a_schedule_in_canonical_text_and_it_is_audited(app, client):
    login(client, "admin")
    html = client.get(PAGE).get_data(as_text=True)
    assert "<summary>Advanced</summary>" in html and 'name="retry_schedule"' in html
    assert f'placeholder="{DEFAULT}"' in html and "Empty: the server default" in html
    version = page_version(html)

    saved = client.post(PAGE, data=save_form(version, retry_schedule=" 1000ms, 2s ,5s"), follow_redirects=True)

    html = saved.get_data(as_text=True)
    assert "Escalation settings saved" in html
    assert _schedule(app) == "1s,2s,5s"
    assert 'value="1s,2s,5s"' in html and shown("In force now: <code>1s,2s,5s</code> (this pair's own)") in html
    assert page_version(html) == version + 1
    [entry] = _audits(app)
    assert entry.actor == "admin" and entry.environment == "production"
    assert entry.details == f"default ({DEFAULT}) \u2192 1s,2s,5s"

    cleared = client.post(PAGE, data=save_form(version + 1, retry_schedule=""), follow_redirects=True)
    assert "Escalation settings saved" in cleared.get_data(as_text=True)
    assert _schedule(app) is None
    assert _audits(app)[-1].details == f"1s,2s,5s \u2192 default ({DEFAULT})"
    assert "(the server default)" in cleared.get_data(as_text=True)


def test_a_save_without_the_field_keeps_the_schedule(app, client):
    _set(app, "1s,1s")
    login(client, "admin")
    version = page_version(client.get(PAGE).get_data(as_text=True))
    client.post(PAGE, data=save_form(version, url="https://example.com/other"))  # as a script posts it
    assert _schedule(app) == "1s,1s" and len(_audits(app)) == 1


def test_a_bad_schedule_is_refused_next_to_the_field_keeping_every_input(app, client):
    login(client, "admin")
    version = page_version(client.get(PAGE).get_data(as_text=True))
    form = save_form(version, url="https://example.com/kept", retry_schedule="1s,5x", default_urgency="low",
                     claim_timeout_minutes="45")

    refused = client.post(PAGE, data=form)

    html = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert f'<p class="error" id="retry-schedule-error" aria-live="polite">{shown("Not a duration: ")}' in html
    assert '<details class="card advanced" id="advanced" open>' in html
    assert 'value="1s,5x"' in html and 'value="https://example.com/kept"' in html and 'value="45"' in html
    assert '<option value="low" selected>' in html and "data-dirty" in html
    assert f'name="version" value="{version}"' in html
    assert _schedule(app) is None and get_version(app) == version and not _audits(app)


def get_version(app) -> int:
    with app.app_context():
        return get_settings("agent-123", "production").version


@pytest.mark.parametrize("role", ["editor", "viewer"])
def test_other_roles_see_the_schedule_but_no_field(app, client, role):
    _set(app, "1s,1s")
    login(client, role)
    html = client.get(PAGE).get_data(as_text=True)
    assert "Advanced" not in html and 'name="retry_schedule"' not in html
    assert shown("Retry schedule: <code>1s,1s</code> (this pair's own);") in html
    assert "only an admin can change it" in html
    assert shown(f"Retry schedule: <code>{DEFAULT}</code> (the server default)") in client.get(STAGING).get_data(
        as_text=True)


@pytest.mark.parametrize("forged", ["1s", "", "default", "5x"])
def test_an_editor_cannot_change_it_by_a_forged_post(app, client, forged):
    _set(app, "2s,2s")
    login(client, "editor")
    version = page_version(client.get(PAGE).get_data(as_text=True))

    refused = client.post(PAGE, data=save_form(version, url="https://example.com/kept", retry_schedule=forged))

    html = refused.get_data(as_text=True)
    assert refused.status_code == 403
    assert "Only an admin can change the retry schedule." in html
    assert 'value="https://example.com/kept"' in html  # nothing typed is lost
    assert _schedule(app) == "2s,2s" and get_version(app) == version and len(_audits(app)) == 1


def test_an_editor_may_send_back_the_schedule_already_saved(app, client):
    _set(app, "2s,2s")
    login(client, "editor")
    version = page_version(client.get(PAGE).get_data(as_text=True))
    saved = client.post(PAGE, data=save_form(version, retry_schedule="2000ms, 2s"))
    assert saved.status_code == 302 and _schedule(app) == "2s,2s" and get_version(app) == version + 1


# -- the API -----------------------------------------------------------------------------------------------------

def _put(client, headers, **changes):
    read = client.get(SETTINGS, headers=headers)
    document = {**read.json, "webhook": {"enabled": False}, **changes}
    return client.put(SETTINGS, json=document, headers={**headers, "If-Match": read.headers["ETag"]})


def test_api_reads_and_replaces_the_schedule(app, client):
    admin = api_token(app, "admin")
    assert client.get(SETTINGS, headers=admin).json["retrySchedule"] is None

    saved = _put(client, admin, retrySchedule="1000ms,2s")
    assert saved.status_code == 200 and saved.json["retrySchedule"] == "1s,2s"
    assert _schedule(app) == "1s,2s" and _audits(app)[-1].via == "API token 'test-admin'"

    kept = _put(client, admin, defaultUrgency="low")  # the document GET returned, sent back: unchanged
    assert kept.json["retrySchedule"] == "1s,2s"
    document = {k: v for k, v in kept.json.items() if k != "retrySchedule"}  # left out: unchanged too
    left_out = client.put(SETTINGS, json=document, headers={**admin, "If-Match": kept.headers["ETag"]})
    assert left_out.status_code == 200 and left_out.json["retrySchedule"] == "1s,2s"

    cleared = _put(client, admin, retrySchedule=None)
    assert cleared.status_code == 200 and cleared.json["retrySchedule"] is None and _schedule(app) is None


@pytest.mark.parametrize(("value", "message"), [
    ("1s,5x", "Not a duration: '5x'"),
    ("2d", "No delay of a retry schedule may be longer than 1d (24h)."),
    (",".join(["1s"] * 21), "A retry schedule has at most 20 delays, not 21."),
])
def test_api_refuses_a_bad_schedule_naming_the_field(app, client, value, message):
    refused = _put(client, api_token(app, "admin"), retrySchedule=value)
    body = assert_problem(refused, 422, "validation-error")
    [error] = body["errors"]
    assert error["pointer"] == "#/retrySchedule" and message in error["detail"]
    assert _schedule(app) is None


def test_api_refuses_an_editor_token_changing_it(app, client):
    _set(app, "2s,2s")
    editor = api_token(app, "editor")
    for value in ("1s", None, "5x"):
        body = assert_problem(_put(client, editor, retrySchedule=value), 403, "forbidden")
        assert body["detail"] == "Only an admin can change the retry schedule."
    assert _schedule(app) == "2s,2s"
    same = _put(client, editor, retrySchedule="2s,2s", defaultUrgency="low")
    assert same.status_code == 200 and same.json["retrySchedule"] == "2s,2s"


def test_openapi_documents_the_field(client):
    schema = client.get("/api/v1/openapi.json").json["components"]["schemas"]
    for name in ("Settings", "SettingsInput"):
        field = schema[name]["properties"]["retrySchedule"]
        assert field["type"] == ["string", "null"] and field["pattern"].startswith("^")
        assert "null: the server default" in field["description"]


# -- the CLI -----------------------------------------------------------------------------------------------------

def test_cli_sets_shows_and_clears_the_schedule(app, runner):
    shown = runner.invoke(args=["qlar", "webhook", "show", "agent-123", "staging"])
    assert f"Retry schedule: default ({DEFAULT})" in shown.output

    result = runner.invoke(args=["qlar", "webhook", "set", "agent-123", "staging", "--retry-schedule", "1s,2s,5000ms"])
    assert result.exit_code == 0, result.output
    assert "Escalation settings saved" in result.output and "Retry schedule: 1s,2s,5s" in result.output
    shown_now = runner.invoke(args=["qlar", "webhook", "show", "agent-123", "staging"]).output
    assert "Retry schedule: 1s,2s,5s\n" in shown_now
    assert _schedule(app, "staging") == "1s,2s,5s" and _schedule(app) is None
    assert _audits(app)[-1].actor == "cli"

    result = runner.invoke(args=["qlar", "webhook", "set", "agent-123", "staging", "--retry-schedule", "default"])
    assert result.exit_code == 0 and f"Retry schedule: default ({DEFAULT})" in result.output
    assert _schedule(app, "staging") is None


@pytest.mark.parametrize(("value", "message"), [
    ("5x", "Error: Not a duration: '5x' (use a number and one of ms, s, m, h, d, such as 5m)."),
    ("3d", "Error: No delay of a retry schedule may be longer than 1d (24h)."),
])
def test_cli_refuses_a_bad_schedule_in_one_line(app, runner, value, message):
    result = runner.invoke(args=["qlar", "webhook", "set", "agent-123", "staging", "--retry-schedule", value])
    assert result.exit_code == 1 and result.output.strip() == message
    assert _schedule(app, "staging") is None


# -- queue health ------------------------------------------------------------------------------------------------

def test_queue_health_shows_the_schedule_in_force(app, client):
    _set(app, "1s,1s", env="staging")
    login(client, "viewer")
    html = _panel(client, "/deliveries?pair=agent-123/staging")
    assert shown("agent-123 · staging: <code>1s,1s</code> (this pair's own).") in html
    html = _panel(client, "/deliveries?pair=agent-123/production")
    assert shown(f"agent-123 · production: <code>{DEFAULT}</code> (the server default).") in html
    html = _panel(client, "/deliveries")
    assert shown(f"<code>{DEFAULT}</code> (the server default); own schedules:") in html
    assert shown("agent-123 · staging <code>1s,1s</code>.") in html


def _panel(client, url: str) -> str:
    """The queue-health panel's schedule line, its whitespace collapsed."""
    html = client.get(url).get_data(as_text=True)
    return " ".join(html[html.index('id="schedule-in-force"'):html.index("An event failing now")].split())


# -- the done-when: a pair's own schedule against a real receiver --------------------------------------------------

def test_a_pair_with_its_own_schedule_delivers_within_seconds_while_others_keep_the_default(tmp_path, receiver,
                                                                                           figure):
    app = make_app(tmp_path, CA_BUNDLE=str(receiver.ca_file), ALLOW_PRIVATE_TARGETS=True, RETRY_SCHEDULE=DEFAULT,
                   TIMEOUT_SECONDS=2, LEASE_SECONDS=4, POLL_SECONDS=0.2)
    try:
        with app.app_context():
            for env in ("production", "staging"):
                point_webhook(app, receiver.url, env)
        result = app.test_cli_runner().invoke(args=["qlar", "webhook", "set", "agent-123", "staging",
                                                    "--retry-schedule", "1s,1s"])
        assert result.exit_code == 0, result.output
        staging_answers = iter([500, 500])
        receiver.respond = lambda r: ((next(staging_answers, 200) if r.json["environment"] == "staging" else 500),
                                      {}, 0)
        app.extensions["qlar_dispatcher"].start()
        started = time.monotonic()
        with app.app_context():
            lifecycle.create_escalation("agent-123", "production")
            lifecycle.create_escalation("agent-123", "staging")

        got = receiver.wait_for(4, timeout=6)  # production's first try and staging's three
        took = time.monotonic() - started
        staging = [r for r in got if r.json["environment"] == "staging"]
        production = [r for r in got if r.json["environment"] == "production"]
        app.extensions["qlar_dispatcher"].stop()

        assert len(staging) == 3 and len(production) == 1 and took < 4
        gaps = [b.at - a.at for a, b in zip(staging, staging[1:], strict=False)]
        assert all(0.8 <= gap <= 1.2 + 0.3 for gap in gaps), gaps  # ±20% jitter, and the time a try takes
        with app.app_context():
            events = {e.environment: e for e in db.session.scalars(db.select(Event))}
            assert events["staging"].status == "succeeded" and events["staging"].attempt_count == 3
            assert events["production"].status == "pending"
            waits = {env: [_wait(a) for a in db.session.scalars(
                db.select(Attempt).filter_by(event_id=events[env].id).order_by(Attempt.number))]
                for env in events}
        assert [w is None for w in waits["staging"]] == [False, False, True]
        assert all(0.8 <= w <= 1.2 for w in waits["staging"][:2]), waits  # the pair's 1s, ±20%
        [production_wait] = waits["production"]
        assert 4.0 <= production_wait <= 6.0  # the default's first 5s, ±20%
        figure("retry_schedule_override", f"delivered after 3 tries in {took:.1f}s (gaps "
                                          f"{', '.join(f'{g:.2f}s' for g in gaps)}); default pair waits "
                                          f"{production_wait:.1f}s")
    finally:
        dispose(app)


def _wait(attempt: Attempt) -> float | None:
    """Seconds from the end of a try to the next one it scheduled (None: it was the last)."""
    if attempt.next_attempt_at is None:
        return None
    ended = attempt.started_at + timedelta(milliseconds=attempt.duration_ms)
    return (attempt.next_attempt_at - ended).total_seconds()
