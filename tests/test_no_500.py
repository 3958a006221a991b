"""No input gets a 5xx: the three inputs the security review found, and generated forms posted to every page route."""
import re
import socket
import threading
from pathlib import Path

import pytest
from apps import dispose, make_app
from helpers import PAGE, api_token, assert_problem, login, save_form
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qlar_console.auth.models import ApiToken
from qlar_console.engine.models import Attempt, Event
from qlar_console.escalations import jobs
from qlar_console.escalations.models import SimulationJob
from qlar_console.escalations.service import create_escalation
from qlar_console.extensions import db
from qlar_console.settings.service import get_settings

SETTINGS = "/api/v1/agents/agent-123/production/settings"
ROOT = Path(__file__).resolve().parent.parent


def test_a_version_past_any_integer_column_is_a_422_not_a_500(client, auth):
    auth.login("editor")
    response = client.post(PAGE, data=save_form(10**30))
    assert response.status_code == 422
    assert "The form&#39;s version is not valid: reload the page and try again." in response.get_data(as_text=True)


@pytest.mark.parametrize("version", ["-1", "0", str(2**31), "9" * 5000])
def test_other_impossible_versions_are_refused_too(client, auth, version):
    auth.login("editor")
    assert client.post(PAGE, data=save_form(version)).status_code in (400, 409, 422)


def test_a_deeply_nested_body_is_refused_before_it_is_parsed(app, client):
    headers = {**api_token(app, "editor"), "If-Match": "*", "Content-Type": "application/json"}
    response = client.put(SETTINGS, data="[" * 100_000, headers=headers)
    body = assert_problem(response, 400, "bad-request")
    assert body["detail"] == "The JSON body is nested deeper than 32 levels; no document here is."
    # Brackets inside strings are text, not nesting; a document of normal depth still reaches the rules.
    document = '{"triggerConditions": ["[[[[' + "[" * 100 + '"], "defaultUrgency": "high", ' \
               '"claimTimeoutMinutes": 30, "webhook": {"enabled": false}}'
    answered = client.put(SETTINGS, data=document, headers=headers)
    assert answered.status_code == 422 and "Unknown trigger condition" in answered.json["errors"][0]["detail"]


@pytest.mark.parametrize("body", [
    b'"' + b'\\"' * (512 * 1024 - 1),  # escaped quotes in a string never closed: 19 s at 80 KB when quadratic
    b'["' + b'\\"' * (512 * 1024 - 2) + b'"]',
    b'"",' * 349_000 + b"[",
    b"[" * (1024 * 1024 - 1),
])
def test_a_mebibyte_body_of_any_shape_is_answered_at_once(app, client, body):
    headers = {**api_token(app, "editor"), "If-Match": "*", "Content-Type": "application/json"}
    answers = []
    worker = threading.Thread(target=lambda: answers.append(client.put(SETTINGS, data=body, headers=headers)),
                              daemon=True)
    worker.start()
    worker.join(timeout=30)  # a linear scan takes milliseconds; the quadratic one took hours at this size
    assert answers, "the body scan held the request for 30 s"
    assert answers[0].status_code in (400, 422) and answers[0].is_json  # not JSON, or not a settings document


@pytest.mark.parametrize(("data", "deep"), [
    (b'{"a": "\\\\"}' + b"[" * 33, True),  # an escaped backslash ends before the quote: the string is closed
    (b'{"a": "\\"' + b"[" * 33 + b'"}', False),  # an escaped quote: the brackets are the string's text
    (b'{"a": "\\\\\\"' + b"[" * 33 + b'"}', False),  # backslash, then an escaped quote
    (b'[[{"x": "]]]]"}]]', False),
    (b"[" * 32 + b"]" * 32, False),
    (b"[" * 33, True),
    (b"", False),
])
def test_the_depth_scan_reads_strings_as_json_does(data, deep):
    from qlar_console.api.body import MAX_DEPTH, too_deep
    assert too_deep(data, MAX_DEPTH) is deep


@pytest.mark.parametrize(("body", "detail"), [
    ('{"claimTimeoutMinutes": ' + "9" * 5000 + "}", "The JSON body holds a number that is too long"),
    ('{"webhook": {"enabled": true, "url": "https://example.com/\\ud800"}}', "lone surrogate"),
    ('{"\\udfff": 1}', "lone surrogate"),
])
def test_bodies_python_cannot_hold_are_400(app, client, body, detail):
    headers = {**api_token(app, "editor"), "If-Match": "*", "Content-Type": "application/json"}
    assert detail in assert_problem(client.put(SETTINGS, data=body, headers=headers), 400, "bad-request")["detail"]


def test_a_paired_surrogate_is_a_character_and_passes(app, client):
    headers = {**api_token(app, "editor"), "If-Match": "*", "Content-Type": "application/json"}
    document = ('{"triggerConditions": ["\\ud83d\\ude00"], "defaultUrgency": "high", "claimTimeoutMinutes": 30, '
                '"webhook": {"enabled": false}}')
    response = client.put(SETTINGS, data=document, headers=headers)
    assert response.status_code == 422 and "\U0001f600" in response.json["errors"][0]["detail"]


def test_a_body_over_a_mebibyte_is_413(app, client):
    headers = {**api_token(app, "editor"), "If-Match": "*", "Content-Type": "application/json"}
    response = client.put(SETTINGS, data='{"x": "' + "a" * (1024 * 1024) + '"}', headers=headers)
    assert_problem(response, 413, "payload-too-large")


def test_a_lone_surrogate_in_the_webhook_url_is_refused_by_the_url_rule(app, runner):
    result = runner.invoke(args=["qlar", "webhook", "set", "agent-123", "production", "--url",
                                 "https://example.com/\udcff", "--enable"])  # what a shell passes for a stray 0xff byte
    assert result.exit_code == 1 and "lone surrogate" in result.output
    with app.app_context():
        assert get_settings("agent-123", "production").webhook_url is None


SURROGATE_PATHS = [
    b"/api/v1/agents/%ED%A0%80/production/settings",  # \ud800, percent-encoded as UTF-8 would if it could
    b"/api/v1/agents/\xed\xa0\x80/production/settings",  # the same bytes, raw
    b"/api/v1/escalations/%ED%A0%80",
    b"/api/v1/agents/agent-123/production/deliveries?status=%ED%A0%80",
    b"/agents/%ED%A0%80/production/escalation",
]


def test_a_surrogate_in_a_url_is_never_a_5xx_over_a_real_socket(live_server):
    base_url, app = live_server
    token = api_token(app, "editor")["Authorization"].encode()
    port = int(base_url.rsplit(":", 1)[1])
    for path in SURROGATE_PATHS:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
            connection.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                               b"Authorization: " + token + b"\r\n\r\n")
            status = int(connection.makefile("rb").readline().split()[1])
        assert status < 500 and (400 <= status or not path.startswith(b"/api/")), (path, status)


# --- generated forms on every page route -------------------------------------------------------------------

def _field_names() -> list[str]:
    """Every form field name the console knows: the templates' inputs, the WTForms fields, what views read."""
    names = set()
    for template in (ROOT / "templates").rglob("*.html"):
        names.update(re.findall(r'\bname="([\w-]+)"', template.read_text()))
    for module in (ROOT / "qlar_console").rglob("*.py"):
        source = module.read_text()
        names.update(re.findall(r'request\.form\.get(?:list)?\("([\w-]+)"', source))
        names.update(re.findall(r"^\s+(\w+) = \w*Field\(", source, re.MULTILINE))
    return sorted(names)


NAMES = _field_names()
HARD_VALUES = [
    "", "-1", str(10**30), "9" * 5000, "1e309", "nan", "9999-12-31T23:59:59", "x" * 5000, " \t ",
    "\u0661\u0662\u0663\u0664\u0665\u0666",  # digits to isdigit() and int(), but not ASCII
    "\u00e9\u6f22\U0001f600", "https://2130706433:9/x",
]
VALUES = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"-?[0-9]{1,40}", fullmatch=True),  # numbers past any column, as version=10**30 was
    st.sampled_from(["0", "1", "y", "yes", "on", "none", "1h", "24h", "dismiss", "admin", "viewer", "agent-123",
                     "production", "inf", "2026-13-45", *HARD_VALUES]),
)
# Values a form accepts, so that generated forms also get past the first check (loopback URLs only).
PLAUSIBLE = {
    "agent": "agent-123", "env": "production", "version": "1", "default_urgency": "high", "claim_timeout_minutes": "30",
    "trigger_conditions": "Angry Customer Escalation", "webhook_enabled": "y", "webhook_url": "https://127.0.0.1:9/h",
    "topic": "Billing", "area": "Payments", "reason": "Charged twice", "urgency_level": "high", "notes": "Refunded",
    "trigger_condition": "Angry Customer Escalation", "thread_id": "", "code": "123456",
    "flows": "1", "rate": "1", "name": "fuzz", "user": "viewer", "scopes": "read", "expires": "30d", "grace": "1h",
    "confirmed": "yes", "signature": "v1,AAAA", "username": "viewer",
}
FORMS = st.builds(
    lambda keep, generated: {**{name: PLAUSIBLE[name] for name in keep}, **generated},
    st.just(set(PLAUSIBLE)) | st.sets(st.sampled_from(sorted(PLAUSIBLE))),
    st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=8), st.lists(VALUES, min_size=1, max_size=3),
                    max_size=6),
)
PER_ROUTE = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                     suppress_health_check=list(HealthCheck))


@pytest.fixture
def fuzz_app(tmp_path, database_url):
    """The console with records for every path parameter, and no delivery thread (nothing leaves the machine)."""
    app = make_app(tmp_path, SQLALCHEMY_DATABASE_URI=database_url, WORKER="external",
                   PROPAGATE_EXCEPTIONS=False)  # a crash is a 500 response, which the assertion names
    api_token(app, "admin")
    with app.app_context():
        escalation = create_escalation("agent-123", "production")
        event_id = db.session.scalar(db.select(Event.id).filter_by(escalation_id=escalation.id))
        db.session.add(Attempt(event_id=event_id, number=1, trigger="scheduled", url="https://127.0.0.1:9/h",
                               request_headers={"X-Qlar-Signature": "t=1,v1=00"}, response_status=401))
        db.session.commit()
        token_id = db.session.scalar(db.select(ApiToken.id))
        app.config["FUZZ_IDS"] = {"agent_id": "agent-123", "env": "production", "escalation_id": escalation.id,
                                  "event_id": event_id, "number": 1, "token_id": token_id}
    yield app
    with app.app_context():  # simulations a generated form started stop at their next report
        for job in db.session.scalars(db.select(SimulationJob).filter_by(finished_at=None)):
            jobs.cancel_job(job, "test")
    for job_thread in [t for t in threading.enumerate() if t.name.startswith("qlar-job-")]:
        job_thread.join(timeout=2 * jobs.BEAT_EVERY)
    dispose(app)


def _form_routes(app) -> list[str]:
    """The path of each POST route outside /api/, its parameters filled; signing in and out come last."""
    ids, paths = app.config["FUZZ_IDS"], set()
    for rule in app.url_map.iter_rules():
        if "POST" in rule.methods and not rule.rule.startswith("/api/"):
            numbers = re.findall(r"<int:(\w+)>", rule.rule)
            values = {name: ids.get(name, 1 if name in numbers else "x") for name in rule.arguments}
            paths.add(rule.build(values, append_unknown=False)[1])
    return sorted(paths, key=lambda path: ("login" in path or "logout" in path, path))


@pytest.mark.long(40)
def test_generated_forms_never_get_a_5xx(fuzz_app):
    client = fuzz_app.test_client()
    routes = _form_routes(fuzz_app)
    assert PAGE in routes and "/escalations" in routes and len(routes) >= 10
    for route in routes:
        if client.get("/").status_code != 200:  # a route before this one signed the session out
            login(client, "admin")
        page = client.get(route)  # open the form first, as a browser does (405: the route only takes POST)
        assert page.status_code < 500
        for field in sorted(set(re.findall(r'\bname="([\w-]+)"', page.get_data(as_text=True)))):
            for value in HARD_VALUES:  # each of the page's fields gets each hard value, the others plausible
                response = client.post(route, data={**PLAUSIBLE, field: value})
                assert response.status_code < 500, f"POST {route} {field}={value[:40]!r} -> {response.status_code}"
        _poster(client, route)()


def _poster(client, route: str):
    """A hypothesis test posting generated forms to one route."""

    @PER_ROUTE
    @given(form=FORMS)
    def post_anything(form):
        response = client.post(route, data=form)
        assert response.status_code < 500, f"POST {route} {form!r} -> {response.status_code}"

    return post_anything
