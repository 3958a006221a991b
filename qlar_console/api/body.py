"""The API's JSON bodies, read with limits: size, nesting depth, integer length and valid Unicode.

Python's json module recurses once per level of nesting and turns any run of digits into an int, so
a body of 100,000 `[` or of a 5,000-digit number would end as a 500; such bodies are refused first.
"""
import json
import re
from itertools import accumulate

from flask import Request
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from ..problems import ApiProblem

MAX_BODY_BYTES = 1024 * 1024  # the largest document the API takes is a few kilobytes
MAX_DEPTH = 32  # the deepest document the API takes has 3 levels
_NOT_QUOTE_OR_BRACKET = bytes(sorted(set(range(256)) - set(b'"[]{}')))
_SIGN = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # opening +1, closing -1 (as signed bytes)
_SURROGATE = re.compile("[\ud800-\udfff]")  # only a lone one survives decoding: a pair makes one character


class JsonBodyParser(FlaskParser):
    """webargs' parser for flask-smorest, reading JSON bodies with load_json_body."""

    def _raw_load_json(self, req: Request):
        if not is_json_request(req):
            return core.missing
        req.max_content_length = MAX_BODY_BYTES  # reading more answers 413
        return load_json_body(req.get_data(cache=True))


def load_json_body(data: bytes):
    """The parsed body; ApiProblem 400 when it nests too deep, holds a number too long or a lone surrogate.

    Raises json.JSONDecodeError and UnicodeDecodeError (webargs answers them) for what is not JSON.
    """
    if too_deep(data, MAX_DEPTH):
        raise ApiProblem(400, f"The JSON body is nested deeper than {MAX_DEPTH} levels; no document here is.")
    try:
        document = core.parse_json(data)
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # an integer of more digits than Python converts
        raise ApiProblem(400, f"The JSON body holds a number that is too long: {str(exc).split(':')[0]}.") from None
    if _holds_lone_surrogate(document):
        raise ApiProblem(400, "The JSON body holds a lone surrogate (an unpaired \\ud800-\\udfff escape): "
                              "send valid Unicode text.")
    return document


def too_deep(data: bytes, limit: int) -> bool:
    """True when arrays and objects nest deeper than `limit`, found without parsing (brackets in strings aside).

    Linear whatever the body holds, every step in C: escaped backslashes then escaped quotes out (left to right,
    as a string reads them), only quotes and brackets kept, the strings' text (every other piece between quotes)
    dropped, and the peak of the running sum of +1 per opening and -1 per closing bracket. Where the body is not
    JSON the count may be off past that point; the parser refuses the body there.
    """
    kept = data.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_QUOTE_OR_BRACKET)
    signs = b"".join(kept.split(b'"')[::2]).translate(_SIGN)
    return bool(signs) and max(accumulate(memoryview(signs).cast("b"))) > limit


def _holds_lone_surrogate(value) -> bool:
    """True when any string of the document (key or value) holds a lone surrogate; depth is bounded already."""
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_holds_lone_surrogate(k) or _holds_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_lone_surrogate(item) for item in value)
    return False
