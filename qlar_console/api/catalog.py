"""/api/v1/schemas/events.json: the event catalog's JSON Schema, public (it holds no data) and cacheable.

The OpenAPI document refers to it twice: this operation, and its `webhooks` section (WEBHOOKS), whose request
body is the schema by $ref.
"""
from flask import current_app, request

from ..escalations.catalog import schema_bytes
from . import PREFIX, api_blueprint

MEDIA_TYPE = "application/schema+json"
MAX_AGE = 3600  # seconds a cache may keep it without asking again (the ETag makes asking cheap)
SCHEMA_PATH = f"{PREFIX}/schemas/events.json"

bp = api_blueprint("Schemas", "The JSON Schema of the webhook event documents (public: no token needed).")

WEBHOOKS = {"escalationEvent": {"post": {
    "summary": "An escalation lifecycle event, POSTed to your webhook URL",
    "description": "One of created, claimed, completed or released; signed with your webhook key "
                   "(X-Qlar-Signature and the Standard Webhooks headers). The body is the event document "
                   f"described by {SCHEMA_PATH}. Answer 2xx once you have it; anything else is retried.",
    "externalDocs": {"description": "The event catalog (JSON Schema, draft 2020-12)", "url": SCHEMA_PATH},
    "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": SCHEMA_PATH}}}},
    "responses": {"2XX": {"description": "Received: the event is not sent again"},
                  "default": {"description": "Refused or failed: qlar retries on its schedule"}},
}}}


@bp.route("/schemas/events.json", methods=["GET"])
@bp.doc(security=[], responses={
    200: {"description": "The JSON Schema (draft 2020-12) of the event document, with an example per type",
          "headers": {"ETag": {"schema": {"type": "string"}}, "Cache-Control": {"schema": {"type": "string"}}},
          "content": {MEDIA_TYPE: {"schema": {"type": "object"}}}},
    304: {"description": "Not modified: the copy named by If-None-Match is current"},
})
def events_schema():
    """The JSON Schema of the webhook event document: the envelope, `escalation`, and what differs per eventType."""
    response = current_app.response_class(schema_bytes(), mimetype=MEDIA_TYPE)
    response.headers["Cache-Control"] = f"public, max-age={MAX_AGE}"
    response.headers["Access-Control-Allow-Origin"] = "*"  # public and data-free: validators may fetch it
    response.add_etag()
    return response.make_conditional(request)
