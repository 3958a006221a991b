"""Strict JSON fields shared by the API's schemas: no coercion of "yes" to true or "30" to 30."""
import marshmallow as ma
from marshmallow import fields


class StrictSchema(ma.Schema):
    """Unknown members are refused, and so are read-only ones (dump_only: the OpenAPI document says readOnly)."""


class JsonBoolean(fields.Boolean):
    """A JSON true or false, never 0 or 1 (which Python's sets of truthy values would take for them)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


def boolean(**kwargs) -> fields.Boolean:
    """true or false, nothing else."""
    return JsonBoolean(**kwargs)


class JsonInteger(fields.Integer):
    """A JSON integer (30 or 30.0, as JSON Schema counts them), never "30" or true."""

    def _validated(self, value):
        if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer():
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class JsonNumber(fields.Float):
    """A JSON number, never "1.5" or true."""

    def _validated(self, value):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


def integer(**kwargs) -> fields.Integer:
    """A JSON integer, nothing else."""
    return JsonInteger(**kwargs)


def documented(*, enum=None, minimum=None, maximum=None, max_length=None, pattern=None, **metadata) -> dict:
    """Constraints for the OpenAPI document only: the service functions enforce them, with the page's messages."""
    constraints = {"enum": list(enum) if enum else None, "minimum": minimum, "maximum": maximum,
                   "maxLength": max_length, "pattern": pattern}
    return {"metadata": {**{k: v for k, v in constraints.items() if v is not None}, **metadata}}


class UtcDateTime(fields.DateTime):
    """The console stores naive UTC; the API says so: 2026-05-19T10:15:00Z."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return value.replace(tzinfo=None, microsecond=0).isoformat() + "Z"
