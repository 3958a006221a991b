"""Verify in your receiver: the copy-ready snippets of docs/verify/, one page per language, linked from the card.

The files are read from docs/verify/ as they are (tests/reference_receiver/test_verify_snippets.py runs each one
as a server against real deliveries), never copied into a template; the Escalation page only links here, so it
stays light.
"""
from typing import NamedTuple

from flask import Blueprint, Response, abort, render_template
from flask_login import login_required

from ..config import ROOT

VERIFY_DIR = ROOT / "docs" / "verify"

bp = Blueprint("verify", __name__)


class Snippet(NamedTuple):
    """One language's snippet: its URL slug, display name, file under docs/verify/ and how to run it."""

    slug: str
    name: str
    filename: str
    run: str


SNIPPETS = (
    Snippet("python", "Python", "verify.py", "QLAR_WEBHOOK_SECRET=whsec_… PORT=8000 python3 verify.py"),
    Snippet("node", "Node.js", "verify.js", "QLAR_WEBHOOK_SECRET=whsec_… PORT=8000 node verify.js"),
    Snippet("go", "Go", "verify.go", "QLAR_WEBHOOK_SECRET=whsec_… PORT=8000 go run verify.go"),
    Snippet("ruby", "Ruby", "verify.rb", "QLAR_WEBHOOK_SECRET=whsec_… PORT=8000 ruby verify.rb"),
    Snippet("php", "PHP", "verify.php", 'QLAR_WEBHOOK_SECRET=whsec_… php -S "0.0.0.0:8000" verify.php'),
    Snippet("java", "Java", "Verify.java", "QLAR_WEBHOOK_SECRET=whsec_… PORT=8000 java Verify.java"),
)
BY_SLUG = {s.slug: s for s in SNIPPETS}


@bp.app_template_global()
def verify_snippets() -> tuple[Snippet, ...]:
    """The languages, in the card's order, for the links on the Escalation page."""
    return SNIPPETS


def snippet_or_404(language: str) -> Snippet:
    """The snippet of a language slug, or 404."""
    snippet = BY_SLUG.get(language)
    if snippet is None:
        abort(404)
    return snippet


@bp.get("/verify/<language>")
@login_required
def snippet(language: str):
    """One language's verification code, with Copy and a download link."""
    chosen = snippet_or_404(language)
    code = (VERIFY_DIR / chosen.filename).read_text(encoding="utf-8")
    return render_template("settings/verify.html", snippet=chosen, code=code, snippets=SNIPPETS)


@bp.get("/verify/<language>/file")
@login_required
def download(language: str):
    """The snippet file itself, as a download."""
    chosen = snippet_or_404(language)
    data = (VERIFY_DIR / chosen.filename).read_bytes()
    return Response(data, mimetype="text/plain",
                    headers={"Content-Disposition": f'attachment; filename="{chosen.filename}"'})
