"""The webhook URL rule, one function used by the form, the CLI and the dispatcher.

Which addresses count as public is decided here too (is_public_address): the Save-time warning and
the dispatcher's send-time SSRF guard (engine/send.py) both ask it.
"""
import ipaddress
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import DomainError

MAX_URL_LENGTH = 2048
PRIVATE_WARNING = (
    "This host is localhost or a private address: qlar cannot reach it from the internet. "
    "Use it only for local testing."
)
RESOLVED_WARNING = (
    "This host resolves to a private, loopback or link-local address ({addresses}): qlar cannot reach it "
    "from the internet, and delivery refuses it unless QLAR_ALLOW_PRIVATE_TARGETS=1. Use it only for local testing."
)
# Ranges Python's is_global lets through although nothing public lives there: IPv6 forms that embed an
# IPv4 address (their IPv4 may be 127.0.0.1), deprecated site-local, and special-purpose blocks newer
# than some Pythons' tables (the same list as requests-hardened's).
NON_PUBLIC_NETWORKS = tuple(ipaddress.ip_network(net) for net in (
    "::/96",            # IPv4-compatible, deprecated (RFC 4291): ::127.0.0.1
    "::ffff:0:0:0/96",  # IPv4-translated (RFC 2765): ::ffff:0:127.0.0.1
    "64:ff9b::/96",     # NAT64 (RFC 6052)
    "64:ff9b:1::/48",   # local-use NAT64 (RFC 8215)
    "2002::/16",        # 6to4 (RFC 3056)
    "fec0::/10",        # site-local, deprecated (RFC 3879)
    "5f00::/16",        # segment routing (RFC 9602)
    "2001:20::/28",     # ORCHIDv2
    "3fff::/20",        # documentation (RFC 9637)
    "192.0.0.0/24",     # IETF protocol assignments
    "192.88.99.0/24",   # 6to4 relay anycast
    "100.64.0.0/10",    # carrier-grade NAT
))


class InvalidWebhookURL(DomainError):
    """The URL breaks the rule; str(error) is the message shown next to the field (`webhook_url`)."""

    def __init__(self, message: str, field: str = "webhook_url"):
        super().__init__(message, field)


@dataclass(frozen=True)
class CheckedURL:
    """A URL that passed the rule, with a non-blocking warning when the host is not public."""

    url: str
    warning: str | None = None


def check_webhook_url(url: str | None, *, enabled: bool, resolve_seconds: float = 0) -> CheckedURL:
    """Apply the rule: required when enabled, https only, a host, no credentials or whitespace, <= 2048.

    With `resolve_seconds` (Save), the host name is also looked up, waiting at most that long, and the
    warning names any private address it resolves to.
    """
    url = url or ""
    if not url:
        if enabled:
            raise InvalidWebhookURL("Webhook URL is required when the webhook is enabled.")
        return CheckedURL("")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidWebhookURL(f"Webhook URL must be at most {MAX_URL_LENGTH} characters.")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise InvalidWebhookURL("Webhook URL must not contain spaces or other whitespace.")
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in url):  # a lone surrogate: no UTF-8 text (or database) holds it
        raise InvalidWebhookURL("Webhook URL must be valid text: it holds a broken character (a lone surrogate).")
    if not url.lower().startswith("https://"):
        raise InvalidWebhookURL("Webhook URL must start with https://")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
        host = parts.hostname
    except ValueError:
        raise InvalidWebhookURL("Webhook URL is not a valid URL (check the host and port).") from None
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhookURL("Webhook URL must not contain a username or password.")
    if not host:
        raise InvalidWebhookURL("Webhook URL must include a host, such as https://your-domain.com/path")
    if is_private_host(host):
        return CheckedURL(url, PRIVATE_WARNING)
    private = private_addresses(host, resolve_seconds)
    return CheckedURL(url, RESOLVED_WARNING.format(addresses=", ".join(private)) if private else None)


def is_private_host(host: str) -> bool:
    """True for localhost names and for addresses that are not public, in any form the resolver reads.

    Numeric hosts are read as the resolver reads them (inet_aton rules): 2130706433, 0177.0.0.1,
    0x7f.1 and 127.1 are all 127.0.0.1.
    """
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost") or host.endswith(".local"):
        return True
    address = numeric_address(host)
    return address is not None and not is_public_address(address)


def numeric_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a numeric host stands for (no lookup), or None for a host name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError, ValueError):  # a name, or not a host at all
        return None
    return ipaddress.ip_address(infos[0][4][0].split("%")[0])


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True only for a globally routable unicast address; an IPv4-mapped IPv6 address is judged by its IPv4."""
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast and not any(address in net for net in NON_PUBLIC_NETWORKS)


def private_addresses(host: str, timeout: float) -> list[str]:
    """The addresses `host` resolves to that are not public, looked up for at most `timeout` seconds.

    A lookup that fails or takes longer finds nothing: the warning is advice, and send time checks again.
    """
    if timeout <= 0:
        return []
    found: list[tuple] = []

    def lookup():
        try:
            found.extend(socket.getaddrinfo(host.rstrip("."), 443, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError, ValueError):
            pass

    thread = threading.Thread(target=lookup, name="qlar-resolve", daemon=True)  # getaddrinfo has no timeout
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return []
    addresses = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in found}
    return sorted(str(a) for a in addresses if not is_public_address(a))
