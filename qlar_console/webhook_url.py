"""The webhook URL rule, one function used by the form, the CLI and the dispatcher."""
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import DomainError

MAX_URL_LENGTH = 2048
PRIVATE_WARNING = (
    "This host is localhost or a private address: qlar cannot reach it from the internet. "
    "Use it only for local testing."
)


class InvalidWebhookURL(DomainError):
    """The URL breaks the rule; str(error) is the message shown next to the field (`webhook_url`)."""

    def __init__(self, message: str, field: str = "webhook_url"):
        super().__init__(message, field)


@dataclass(frozen=True)
class CheckedURL:
    """A URL that passed the rule, with a non-blocking warning when the host is not public."""

    url: str
    warning: str | None = None


def check_webhook_url(url: str | None, *, enabled: bool) -> CheckedURL:
    """Apply the rule: required when enabled, https only, a host, no credentials or whitespace, <= 2048."""
    url = url or ""
    if not url:
        if enabled:
            raise InvalidWebhookURL("Webhook URL is required when the webhook is enabled.")
        return CheckedURL("")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidWebhookURL(f"Webhook URL must be at most {MAX_URL_LENGTH} characters.")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise InvalidWebhookURL("Webhook URL must not contain spaces or other whitespace.")
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
    return CheckedURL(url, PRIVATE_WARNING if is_private_host(host) else None)


def is_private_host(host: str) -> bool:
    """True for localhost names and for loopback, private, link-local, CGNAT or reserved addresses."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost") or host.endswith(".local"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not address.is_global
