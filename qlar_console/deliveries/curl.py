"""Copy as cURL: one attempt's request as a shell command QA can replay by hand against a receiver they control.

The command carries the attempt's URL, every header it recorded (signatures included: they are what the
receiver checks; the key itself is never stored with an attempt, so it cannot appear) and the event's exact body
bytes. curl's own additions are kept from changing the request: no Expect: 100-continue, HTTP/1.1 as the
dispatcher speaks it, no URL globbing. Used by the escalation timeline (escalations/timeline.py).
"""
from collections.abc import Mapping

CURL = "curl"
# Quiet but for errors; HTTP/1.1 as the dispatcher speaks it. (curl adds Host and Content-Length as every client
# does, and Accept: */*, which the dispatcher's client sends too.)
FIXED_OPTIONS = ("-sS", "--http1.1", "-X", "POST")
GLOB_CHARACTERS = frozenset("[]{}")
UNSAFE_IN_HEADER = frozenset("\x00\r\n")


def shell_quote(text: str) -> str:
    """The text as one POSIX shell word in single quotes: nothing inside is special, ' is written '\\''."""
    return "'" + text.replace("'", "'\\''") + "'"


def header_argument(name: str, value: str) -> str:
    """curl's -H argument for one header as sent; an empty value is written "Name;" (curl drops "Name:")."""
    return f"{name}: {value}" if value != "" else f"{name};"


def curl_command(url: str, headers: Mapping[str, str], body: bytes) -> str:
    """The curl command that sends the same POST: URL, each header exactly as recorded, and the body bytes.

    The body must be UTF-8 text without NUL (event bodies are compact JSON); a shell argument cannot hold other
    bytes, so anything else raises ValueError rather than give a command that sends something different.
    """
    text = body.decode("utf-8")  # UnicodeDecodeError is a ValueError
    if "\x00" in text or any(set(f"{name}{value}") & UNSAFE_IN_HEADER for name, value in headers.items()):
        raise ValueError("The request holds a NUL or a line break where a curl command cannot carry it.")
    first = [CURL, *FIXED_OPTIONS]
    if GLOB_CHARACTERS & set(url):
        first.append("--globoff")  # [ ] { } in a URL are curl ranges otherwise (and IPv6 literals need it)
    lines = [" ".join([*first, shell_quote(url)])]
    names = {name.lower() for name in headers}
    lines += [f"-H {shell_quote(header_argument(name, str(value)))}" for name, value in headers.items()]
    # curl's own additions that would change the request: none without a header of that name
    lines += [f"-H {shell_quote(name + ':')}" for name in ("Content-Type", "Expect") if name.lower() not in names]
    # --data-binary posts the bytes as given; --data-raw too, and also when the body starts with @ (not a file name)
    lines.append(f"{'--data-raw' if text.startswith('@') else '--data-binary'} {shell_quote(text)}")
    return " \\\n  ".join(lines)
