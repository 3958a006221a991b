"""Security headers (HSTS in production), CSRF protection, the trusted proxies, and error pages that never show
a traceback or a secret."""
import logging

from flask import Flask, abort, jsonify, render_template, request
from flask_wtf import CSRFProtect
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.middleware.proxy_fix import ProxyFix

from .errors import DomainError
from .problems import http_status, problem_from_exception

log = logging.getLogger(__name__)
csrf = CSRFProtect()

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
ERROR_MESSAGES = {
    400: "The request could not be understood.",
    403: "Your role cannot do this.",
    404: "There is nothing here.",
    405: "This method is not allowed here.",
}


SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def add_security_headers(response):
    """after_request hook: the strict CSP and friends (the console and the reference receiver use it)."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


HSTS = "max-age=31536000"  # a year; no includeSubDomains: the console's domain may have other hosts on plain HTTP


def add_hsts(response):
    """after_request hook in production: browsers keep to HTTPS for the console's host (RFC 6797)."""
    response.headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def trust_proxies(app: Flask) -> None:
    """QLAR_TRUSTED_PROXIES (default 0): how many proxies in front of the console to believe. With 1 behind the
    nginx the README shows, the client's address (the limits' key), scheme, host and prefix (the API's `next`
    links) come from that proxy's X-Forwarded-* headers; with 0 they are ignored, as a client can forge them."""
    raw = app.config.get("TRUSTED_PROXIES") or 0
    try:
        count = int(raw)
    except (TypeError, ValueError):
        count = -1
    if not 0 <= count <= 10:
        raise RuntimeError(f"QLAR_TRUSTED_PROXIES must be a whole number from 0 to 10 (the proxies in front of the "
                           f"console), not {str(raw)[:40]!r}.")
    if count:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count, x_port=count,
                                x_prefix=count)


def init_security(app: Flask) -> None:
    """Check CSRF tokens, add security headers to every response (HSTS in production: QLAR_ENV=production or
    secure cookies), trust the configured proxies and register the error pages."""
    csrf.init_app(app)
    app.after_request(add_security_headers)
    trust_proxies(app)
    if app.config["ENV"] == "production" or app.config.get("SESSION_COOKIE_SECURE"):
        app.after_request(add_hsts)

    @app.before_request
    def refuse_nul_paths():
        if "\x00" in request.path:  # no id or name holds one, and PostgreSQL text cannot
            abort(404)

    def error_response(message: str, status: int):
        if request.accept_mimetypes.best == "application/json" or request.is_json:
            return jsonify(error=message), status
        return render_template("error.html", message=message, status=status), status

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return error_response(
            "The form was sent without a valid security token (CSRF). Reload the page and try again.", 400
        )

    @app.errorhandler(DomainError)
    def refused(error):
        """A refusal no page turned into a flash or a form error (the API answers its own: api_blueprint)."""
        status = http_status(error)
        if status >= 500:  # a master key problem: the operator must act
            log.error("master key problem: %s", error)
        return error_response(str(error), status)

    @app.errorhandler(HTTPException)
    def http_error(error):
        if _is_api():
            if isinstance(error, InternalServerError):
                log.error("API call failed: %s %s", request.method, request.path, exc_info=error.original_exception)
            return problem_from_exception(error)
        if error.code in ERROR_MESSAGES:
            return error_response(ERROR_MESSAGES[error.code], error.code)
        return error


def _is_api() -> bool:
    """API paths answer errors as application/problem+json."""
    return request.path.startswith("/api/")
