"""One HTTP POST to a webhook endpoint: pooled, TLS-verified, never redirected, SSRF-guarded."""
import logging
import threading
import time
from dataclasses import dataclass, field

import requests
from requests_hardened import Config, Manager
from requests_hardened.ip_filter import InvalidIPAddress

log = logging.getLogger(__name__)

RESPONSE_EXCERPT_BYTES = 16 * 1024
REFUSED_TARGET = (
    "Refused: {host} resolves to a private, loopback, link-local or reserved address ({detail}). "
    "qlar only delivers to public addresses; set QLAR_ALLOW_PRIVATE_TARGETS=1 to allow it (test setups only)."
)


@dataclass
class Outcome:
    """What one try produced; `status` is None when no HTTP response came back."""

    duration_ms: float
    status: int | None = None
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Sender:
    """Posts signed bodies; each thread keeps its own pooled requests.Session."""

    def __init__(self, *, timeout: float, verify: str | bool, allow_private: bool):
        self.timeout, self.verify, self.allow_private = timeout, verify, allow_private
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            if self.allow_private:
                session = requests.Session()
            else:
                session = Manager(Config(
                    ip_filter_enable=True, ip_filter_allow_loopback_ips=False, never_redirect=True,
                    default_timeout=(self.timeout, self.timeout),
                )).get_session()
            session.trust_env = False  # no proxies or netrc from the environment
            self._local.session = session
        return session

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        """Send once and describe the result; never raises for network or HTTP failures."""
        started = time.perf_counter()
        elapsed = lambda: (time.perf_counter() - started) * 1000  # noqa: E731
        try:
            response = self._session().post(
                url, data=body, headers=headers, timeout=(self.timeout, self.timeout),
                allow_redirects=False, verify=self.verify, stream=True,
            )
        except InvalidIPAddress as exc:
            host = requests.utils.urlparse(url).hostname
            return Outcome(elapsed(), error=REFUSED_TARGET.format(host=host, detail=exc))
        except requests.Timeout:
            return Outcome(elapsed(), error=f"Timed out after {self.timeout:g}s without a response.", timed_out=True)
        except requests.exceptions.SSLError as exc:
            return Outcome(elapsed(), error=f"TLS error: {_reason(exc)}")
        except requests.ConnectionError as exc:
            return Outcome(elapsed(), error=f"Connection failed: {_reason(exc)}")
        except requests.RequestException as exc:
            return Outcome(elapsed(), error=f"Request failed: {_reason(exc)}")
        outcome = Outcome(0, status=response.status_code, headers=dict(response.headers))
        try:
            outcome.body = response.raw.read(RESPONSE_EXCERPT_BYTES, decode_content=True) or b""
        except Exception as exc:  # a response whose body breaks off still has its status
            outcome.error = f"The response body could not be read: {_reason(exc)}"
        finally:
            response.close()
        outcome.duration_ms = elapsed()
        if 300 <= response.status_code < 400:
            location = response.headers.get("Location", "(no Location)")
            outcome.error = f"Redirect to {location} not followed: set the Webhook URL to the final address."
        return outcome


def _reason(exc: Exception) -> str:
    """The innermost useful message of a requests/urllib3 exception chain."""
    while exc.args and isinstance(exc.args[0], Exception):
        exc = exc.args[0]
    reason = getattr(exc, "reason", None)
    return str(reason or exc)[:500]
