"""The home page's overview in a real browser: nothing cut at 1280 px, no sideways scroll at 390 px, axe clean."""

from helpers import axe_violations, sideways_overflow, wider_than
from settings.test_home_page import _traffic


def test_overview_in_the_browser_fits_and_passes_axe(signed_in, live_server):
    """At 1280 px nothing is cut (the table does not even scroll); at 390 px the page does not scroll sideways."""
    _traffic(live_server[1])
    page = signed_in("viewer", path="/")
    table = page.locator("table.overview")
    assert table.locator("tbody tr").count() == 2
    assert wider_than(page, 1280) == []
    assert page.evaluate("(el => el.scrollWidth - el.clientWidth)(document.querySelector('.table-scroll'))") <= 0
    assert axe_violations(page) == []
    small = signed_in("viewer", 390, "dark", path="/")
    assert sideways_overflow(small) == 0
    assert axe_violations(small) == []
