"""The API reference page renders in a real browser from local assets, under the console's strict CSP."""


def test_the_reference_page_renders_every_operation(browser, live_server):
    base_url, _ = live_server
    page = browser.new_page()
    refused = []
    page.on("console", lambda message: refused.append(message.text) if message.type == "error" else None)
    page.on("request", lambda request: refused.append(request.url) if not request.url.startswith(base_url) else None)

    page.goto(f"{base_url}/api/v1/docs")

    page.get_by_text("qlar-console API").first.wait_for(timeout=15000)
    assert page.get_by_text("Read the escalation settings").first.is_visible()
    assert page.get_by_text("/api/v1/agents/{agent_id}/{env}/settings").first.is_visible()
    assert refused == []
    page.close()
