"""One time format on every page: local time and how long ago, the UTC time on hover (templates/_ui.html `when`).
The API tokens page, the account's second factor, Escalations and Users showed plain UTC before."""
from helpers import api_token

from qlar_console.escalations import service


def test_tokens_escalations_and_users_show_local_and_relative_time_with_utc_on_hover(signed_in, live_server):
    base_url, app = live_server
    api_token(app, "editor")
    with app.app_context():
        service.create_escalation("agent-123", "production", topic="refund", area="payment", urgencyLevel="high",
                                  reason="User is angry")
    page = signed_in("admin", path=None, timezone_id="Asia/Tokyo")
    for path in ("/tokens", "/escalations?agent=agent-123&env=production", "/users"):
        page.goto(path)
        times = page.locator("main time[data-local]")
        assert times.count() >= 1, path
        for i in range(times.count()):
            text, title = times.nth(i).text_content(), times.nth(i).get_attribute("title")
            assert title.endswith(" UTC") and "UTC" not in text, (path, text, title)
            assert "ago" in text or "now" in text, (path, text)
