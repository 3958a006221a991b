"""The API's authorization, pair by pair: every scope x every role over every route, so neither check can go missing."""
import re

import pytest
from helpers import api_token, assert_problem, stored_secret

from qlar_console.audit.models import AuditEntry
from qlar_console.auth.models import ROLES, SCOPE_ROLES, SCOPES
from qlar_console.extensions import db

SECRET = "/api/v1/agents/agent-123/production/webhook/secret"
UNSCOPED = {"/api/v1/openapi.json", "/api/v1/docs", "/api/v1/schemas/events.json"}  # public documents


def api_routes(app) -> list[tuple[str, str, str]]:
    """(method, path, scope) of every API operation, path parameters filled with names that exist or not."""
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/") or rule.rule in UNSCOPED:
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: {"agent_id": "agent-123", "env": "production"}.get(m[1], "nope"),
                      rule.rule)
        scope = getattr(app.view_functions[rule.endpoint], "required_scope", None)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append((method, path, scope))
    return routes


def test_every_api_route_needs_a_scope(app):
    routes = api_routes(app)
    assert len(routes) >= 15
    assert [(method, path) for method, path, scope in routes if scope not in SCOPES] == []


def test_a_viewer_token_with_the_secrets_scope_gets_no_key(app, client):
    client.put("/api/v1/agents/agent-123/production/settings", headers={**api_token(app, "editor"), "If-Match": "*"},
               json={"triggerConditions": ["Angry Customer Escalation"], "defaultUrgency": "high",
                     "claimTimeoutMinutes": 30, "webhook": {"enabled": True, "url": "https://example.com/h"}})
    secret = stored_secret(app)

    refused = client.post(SECRET, headers=api_token(app, "viewer", "read", "write", "secrets"))

    body = assert_problem(refused, 403, "forbidden-role")
    assert body["detail"] == "viewer is a viewer; this call needs the editor role."
    assert secret not in refused.get_data(as_text=True) and "whsec_" not in refused.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(db.select(AuditEntry).filter_by(action="webhook.secret_revealed")) is None


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("scope", SCOPES)
def test_each_scope_and_role_pair_over_every_route(app, client, scope, role):
    """A token holding only `scope`, of a user with `role`: allowed exactly where both the scope and role fit."""
    headers = api_token(app, role, scope)
    for method, path, needed in api_routes(app):
        response = client.open(path, method=method, headers=headers)
        if scope != needed:
            assert_problem(response, 403, "forbidden-scope")
        elif ROLES.index(role) < ROLES.index(SCOPE_ROLES[needed]):
            body = assert_problem(response, 403, "forbidden-role")
            assert f"this call needs the {SCOPE_ROLES[needed]} role" in body["detail"]
        else:
            assert response.status_code not in (401, 403), (method, path, response.json)
