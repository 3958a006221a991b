"""The event catalog page in a real browser: axe clean and fits, its example bodies valid against the schema."""
import json

import pytest
from escalations.test_event_catalog import errors
from helpers import axe_violations, sideways_overflow, wider_than


@pytest.mark.parametrize(("width", "scheme"), [(1280, "light"), (390, "dark")])
def test_the_page_passes_axe_and_fits(signed_in, live_server, width, scheme):
    base_url, _ = live_server
    page = signed_in("viewer", path=None, width=width, scheme=scheme)
    page.wait_for_url(f"{base_url}/")
    page.goto("/event-types")
    assert page.get_by_role("heading", name="Event types").is_visible()
    page.get_by_text("The whole schema (JSON)").click()
    assert page.get_by_label("The event schema, as served").is_visible()
    assert sideways_overflow(page) == 0, wider_than(page, width)
    assert axe_violations(page) == []
    example = page.get_by_label("Example body").first.text_content()
    assert not errors(json.loads(example))
