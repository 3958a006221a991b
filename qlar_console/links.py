"""url_for with a memory, for the pages' templates: a link depends only on its endpoint, its arguments and the
script root, so each is built once (url_for costs a few microseconds, and a page has two dozen links)."""
from functools import lru_cache

from flask import Flask, request, url_for


def link(endpoint: str, **values) -> str:
    """The relative URL of endpoint with values, as url_for gives it, remembered."""
    return _link(request.script_root, endpoint, tuple(sorted(values.items())))


@lru_cache(maxsize=4096)
def _link(script_root: str, endpoint: str, values: tuple) -> str:
    return url_for(endpoint, **dict(values))


def init_links(app: Flask) -> None:
    """Make `link` a template global."""
    app.add_template_global(link)
