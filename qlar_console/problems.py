"""Errors of the API as RFC 9457 problem details (application/problem+json), with stable types.

Below both the API and security.py (which answers routing errors on /api/ paths), so neither imports the other.
"""
from http import HTTPStatus

import marshmallow as ma
from flask import jsonify, request
from werkzeug.exceptions import HTTPException

from .crypto import MasterKeyError
from .errors import Conflict, DomainError, Forbidden, NotFound

PROBLEM_TYPE = "urn:qlar:problem:{}"
MEDIA_TYPE = "application/problem+json"
SLUGS = {  # status -> the problem type's stable name
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    412: "precondition-failed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    428: "precondition-required",
    429: "rate-limited",
    500: "internal-error",
}
# a refusal's class -> its HTTP status
REFUSAL_STATUS = ((NotFound, 404), (Conflict, 409), (Forbidden, 403), (MasterKeyError, 500))


class ApiProblem(HTTPException):
    """Raise to answer with a problem: status, detail, optional slug (type), field errors and headers."""

    def __init__(self, status: int, detail: str, *, slug: str | None = None, errors: list[dict] | None = None,
                 headers: dict | None = None):
        super().__init__(detail)
        self.code, self.detail, self.slug = status, detail, slug
        self.errors, self.extra_headers = errors, headers or {}


class FieldError(ma.Schema):
    detail = ma.fields.String(required=True, metadata={"description": "What is wrong, as the page says it"})
    pointer = ma.fields.String(metadata={"description": "JSON Pointer to the body member, e.g. #/webhook/url"})
    parameter = ma.fields.String(metadata={"description": "The query, path or header parameter"})


class ProblemSchema(ma.Schema):
    """RFC 9457 problem details."""

    type = ma.fields.String(required=True, metadata={"description": "Stable problem type, urn:qlar:problem:…"})
    title = ma.fields.String(required=True)
    status = ma.fields.Integer(required=True)
    detail = ma.fields.String()
    instance = ma.fields.String()
    errors = ma.fields.List(ma.fields.Nested(FieldError), metadata={"description": "Field errors (validation)"})


def field_errors(messages: dict) -> list[dict]:
    """webargs' messages ({location: {field: [message]}}) as RFC 9457 field errors."""
    errors = []

    def walk(node, location: str, path: list[str]):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, location, [*path, str(key)])
        elif isinstance(node, list):
            for item in node:
                walk(item, location, path)
        elif location == "json":
            errors.append({"detail": str(node), "pointer": "#/" + "/".join(path)})
        else:
            errors.append({"detail": str(node), "parameter": ".".join(path)})

    for location, fields in messages.items():
        walk(fields, location, [])
    return errors


def http_status(error: DomainError) -> int:
    """The HTTP status a refusal means, by its class; any other refusal is 422 (a rule refused what was sent)."""
    return next((status for cls, status in REFUSAL_STATUS if isinstance(error, cls)), 422)


def problem(status: int, detail: str, *, slug: str | None = None, errors: list[dict] | None = None,
            headers: dict | None = None):
    """The problem+json response for status."""
    body = {
        "type": PROBLEM_TYPE.format(slug or SLUGS.get(status, "about-blank")),
        "title": HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error",
        "status": status,
        "detail": detail,
        "instance": request.path,
    }
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    response.mimetype = MEDIA_TYPE
    response.headers.update(headers or {})
    return response


def problem_from_exception(error: HTTPException):
    """Any HTTP error raised on an /api/ path (ours, webargs' 422, routing, the rate limiter) as a problem."""
    if getattr(error, "response", None) is not None:  # already a problem (the rate limiter's 429)
        return error.response
    if isinstance(error, ApiProblem):
        return problem(error.code, error.detail, slug=error.slug, errors=error.errors, headers=error.extra_headers)
    data = getattr(error, "data", None) or {}
    status = error.code or 500
    if status == 422 and "messages" in data:
        return problem(422, "The request has invalid fields; see errors.", errors=field_errors(data["messages"]))
    detail = error.description if status < 500 else "The server failed to answer this request; it has been logged."
    headers = dict(data.get("headers") or {})
    if getattr(error, "valid_methods", None):
        headers["Allow"] = ", ".join(error.valid_methods)
    return problem(status, detail, headers=headers)
