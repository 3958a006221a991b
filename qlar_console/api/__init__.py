"""The JSON API (/api/v1): bearer tokens with scopes, problem+json errors, per-token rate limits, OpenAPI 3.1.

Every endpoint calls the same service functions as the pages and the CLI; this package only translates
HTTP to those calls and their refusals to problems.
"""
import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable
from copy import deepcopy
from http import HTTPStatus

from flask import Flask, current_app, g, render_template, request
from flask_smorest import Api, Blueprint
from flask_smorest.spec import prepare_response

from ..audit.service import record
from ..auth.tokens import TokenForbidden, Unauthorized, authenticate_token, authorize, token_id
from ..errors import DomainError
from ..extensions import db
from ..problems import MEDIA_TYPE, ProblemSchema, http_status, problem
from ..ratelimit import address_key, limiter
from ..security import csrf
from .body import JsonBodyParser

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
JSON_BODY_PARSER = JsonBodyParser()
BEARER = {"bearer": []}


def _rate_key() -> str:
    """Rate limits count per token, by its id once parsed as authentication parses it (so `bearer T` and
    `Bearer  T ` are the same token); a missing or unknown token counts against the client's address."""
    found = token_id(request.headers.get("Authorization"))
    return f"token:{found}" if found is not None else "addr:" + address_key()


def _too_many(limit):
    """429 as a problem, saying when to come back (Retry-After, in seconds)."""
    wait = max(1, int(limit.reset_at - time.time()))
    return problem(429, f"Rate limit of {limit.limit} per token reached: retry in {wait} s.",
                   headers={"Retry-After": str(wait)})


class QlarApi(Api):
    """flask-smorest's Api with problem+json error responses documented and the console's own error handler.

    The OpenAPI document is written when it is first read (/api/v1/openapi.json, /api/v1/docs), not when the
    app starts: writing it costs most of an app's start, and most apps (a worker, a CLI command, a test) never
    serve it. `later(write)` queues a part of it; reading `spec` writes what is queued first, once.
    """

    ERROR_SCHEMA = ProblemSchema

    def __init__(self, *args, **kwargs):
        self._unwritten: list[Callable] = []
        self._writing, self._writer = threading.Lock(), None
        super().__init__(*args, **kwargs)

    @property
    def spec(self):
        if self._unwritten and self._writer != threading.get_ident():  # the writer itself reads the part-written
            with self._writing:  # another first reader waits for the whole document
                self._writer = threading.get_ident()
                try:
                    while self._unwritten:
                        self._unwritten[0]()
                        del self._unwritten[0]  # only once written, so no reader sees an empty queue before
                finally:
                    self._writer = None
        return self._spec

    @spec.setter
    def spec(self, value):
        self._spec = value

    def later(self, write: Callable[[], object]) -> None:
        """Queue a part of the OpenAPI document, written (in order) when the document is first read."""
        self._unwritten.append(write)

    def register_blueprint(self, blp, *, parameters=None, **options):
        """Mount the blueprint's routes now and document them later."""
        name = options.get("name", blp.name)
        self._app.extensions["flask-smorest"]["blp_name_to_api"][name] = self
        self._app.register_blueprint(blp, **options)
        self.later(lambda: blp.register_views_in_doc(self, self._app, self.spec, name=name, parameters=parameters))
        self.later(lambda: self.spec.tag({"name": name, "description": blp.description}))

    def _register_error_handlers(self):
        """Refusals are answered by each blueprint (api_blueprint), HTTP errors by security.init_security."""

    def _register_responses(self):
        self.later(self._document_responses)

    def _register_etag_headers(self):  # it reads `spec`, which would write what is queued
        self.later(super()._register_etag_headers)

    def _register_pagination_header(self):
        self.later(super()._register_pagination_header)

    def _document_responses(self):
        """Error responses are problem+json; 401 and 429 say how to recover in their headers."""
        headers = {401: {"WWW-Authenticate": {"schema": {"type": "string"}}},
                   429: {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "string"}}}}
        for status in HTTPStatus:
            if status >= 400:
                response = {"description": status.phrase, "schema": self.ERROR_SCHEMA}
                if status in headers:
                    response["headers"] = headers[status]
                prepare_response(response, self.spec, MEDIA_TYPE)
                self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Any other error, as problem details", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, MEDIA_TYPE)
        self.spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME, response, lazy=True)


def api_blueprint(name: str, description: str, where: Callable[[str], dict | None] = lambda field: None) -> Blueprint:
    """A blueprint of the API: under /api/v1, no CSRF (bearer tokens only), one shared rate limit per token.

    A refusal raised in it answers as a problem (problem_from_refusal); `where(field)` locates a refused
    field in the request: {"pointer": "#/…"} in the body or {"parameter": "…"}, or None.
    """
    bp = Blueprint(name, __name__, url_prefix=PREFIX, description=description)
    bp.ARGUMENTS_PARSER = JSON_BODY_PARSER  # bodies too large, too deep or not Unicode: 413 or 400, never a 500
    csrf.exempt(bp)
    limiter.shared_limit(lambda: current_app.config["API_RATE_LIMIT"], scope="api", key_func=_rate_key,
                         on_breach=_too_many)(bp)
    bp.after_request(_audit_call)
    bp.register_error_handler(DomainError, lambda error: problem_from_refusal(error, where))
    return bp


def problem_from_refusal(error: DomainError, where: Callable[[str], dict | None] = lambda field: None):
    """A rule's refusal as a problem, its status by its class (problems.http_status); a 422 points at its field."""
    if isinstance(error, Unauthorized):
        return problem(401, str(error), headers={"WWW-Authenticate": 'Bearer realm="qlar", error="invalid_token"'})
    if isinstance(error, TokenForbidden):
        return problem(403, str(error), slug=f"forbidden-{error.kind}")
    status = http_status(error)
    if status >= 500:  # a master key problem: the operator must act
        log.error("master key problem: %s", error)
    location = where(error.field) if status == 422 and error.field else None
    if location:
        return problem(422, "The request has invalid fields; see errors.", errors=[{"detail": str(error), **location}])
    return problem(status, str(error))


def requires(scope: str):
    """Decorator: the call needs a valid bearer token with `scope`, whose user's role allows it.

    Runs before argument parsing, so a caller without a token learns that first (401), not a field error.
    """

    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            token = authenticate_token(request.headers.get("Authorization"))
            g.api_token, g.audit_via = token, f"API token {token.name!r}"
            authorize(token, scope)
            return view(*args, **kwargs)

        wrapped.required_scope = scope  # what the scope x role tests read
        wrapped._apidoc = apidoc = deepcopy(getattr(view, "_apidoc", {}))
        description = f"{inspect.cleandoc(view.__doc__ or '')}\n\nNeeds a token with the `{scope}` scope."
        apidoc.setdefault("manual_doc", {}).update(security=[BEARER], description=description)
        responses = apidoc.setdefault("response", {}).setdefault("responses", {})
        for status, name in ((401, "UNAUTHORIZED"), (403, "FORBIDDEN"), (429, "TOO_MANY_REQUESTS")):
            responses.setdefault(status, []).append(name)
        return wrapped

    return decorator


def actor() -> str:
    """Who an API call acts as: the token's user."""
    return g.api_token.user.username


def _audit_call(response):
    """Every authenticated call leaves an audit entry as the token's user (a change already left its own)."""
    token = g.get("api_token")
    if token is not None and response.status_code >= 500:
        db.session.rollback()  # whatever failed is not committed by the audit entry
    if token is not None and not g.get("audit_recorded"):
        record(token.user.username, "api.call", f"{request.method} {request.path} -> {response.status_code}")
    if token is not None:
        db.session.commit()  # with the token's last-used time
    return response


def _extend_schemas(spec, modules) -> None:
    """What marshmallow cannot say of a schema (a module's SPEC_EXTRAS), added to its OpenAPI component."""
    for module in modules:
        for name, extra in getattr(module, "SPEC_EXTRAS", {}).items():
            spec.components.schemas[name].update(extra)


def init_api(app: Flask) -> None:
    """Mount the API, its OpenAPI document (/api/v1/openapi.json) and its reference page (/api/v1/docs)."""
    # each module registers its routes; simulate's and receiver_check's join the Escalations and Deliveries blueprints
    from . import catalog, deliveries, endpoints, escalations, receiver_check, settings, simulate  # noqa: F401

    limiter.init_app(app)
    api = QlarApi(app, spec_kwargs={"info": {"description": "Configure webhooks, run escalation flows, read "
                                                            "deliveries and check receivers from scripts."}})
    api.later(lambda: api.spec.components.security_scheme("bearer", {
        "type": "http", "scheme": "bearer", "description": "An API token: `flask qlar token create`."}))
    documented = (settings, endpoints, escalations, deliveries, catalog)
    for module in documented:
        api.register_blueprint(module.bp)
    api.later(lambda: _extend_schemas(api.spec, documented))
    api.later(lambda: api.spec.options.update(webhooks=catalog.WEBHOOKS))  # what qlar sends: the event schema
    app.add_url_rule(f"{PREFIX}/docs", "api_docs", lambda: render_template("api/docs.html"))
