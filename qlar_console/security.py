"""Security headers, CSRF protection, and error pages that never show a traceback or a secret."""
import logging

from flask import Flask, abort, jsonify, render_template, request
from flask_wtf import CSRFProtect
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

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


def init_security(app: Flask) -> None:
    """Check CSRF tokens, add security headers to every response and register the error pages."""
    csrf.init_app(app)
    app.after_request(add_security_headers)

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
