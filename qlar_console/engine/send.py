"""One HTTP POST to a webhook endpoint: pooled, TLS-verified, never redirected, SSRF-guarded, and bounded as a
whole (connect to last byte) by the timeout (deadline.py)."""
import ipaddress
import logging
import ssl
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property

import certifi
import requests
from requests.adapters import HTTPAdapter
from requests_hardened.ip_filter import InvalidIPAddress
from requests_hardened.ip_filter_adapter import IPFilterAdapter

from ..webhook_url import is_public_address
from .deadline import POOL_CLASSES, Watchdog

log = logging.getLogger(__name__)

RESPONSE_EXCERPT_BYTES = 16 * 1024
RESPONSE_HEADERS_KEPT = 50  # of a response's headers (http.client reads up to 100 of up to 64 KiB each)
HEADER_NAME_CHARS = 100
HEADER_VALUE_CHARS = 1024
REFUSED_TARGET = (
    "Refused: {host} resolves to a private, loopback, link-local or reserved address ({detail}). "
    "qlar only delivers to public addresses; set QLAR_ALLOW_PRIVATE_TARGETS=1 to allow it (test setups only)."
)
BASE_HEADERS = requests.utils.default_headers()  # Accept, Accept-Encoding, Connection (User-Agent: each try's)
NO_RESPONSE = "Timed out after {timeout:g}s without a response."
CUT_OFF = "Timed out after {timeout:g}s: the whole try (connect to last byte) took longer; the answer was cut off."


@dataclass
class Outcome:
    """What one try produced; `status` is None when no HTTP response came back.

    A timed-out try is never a success, even when a 2xx status line came before the cut: the receiver's
    answer was not complete within the timeout.
    """

    duration_ms: float
    status: int | None = None
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return not self.timed_out and self.status is not None and 200 <= self.status < 300


class _SharedContext:
    """Adapter mixin: every connection verifies with one SSLContext built once (not a CA file per connect)."""

    ssl_context: ssl.SSLContext

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = POOL_CLASSES  # connections under the whole-try deadline

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, True, cert)
        pool_kwargs.pop("ca_certs", None)
        pool_kwargs.pop("ca_cert_dir", None)
        pool_kwargs.update(ssl_context=self.ssl_context, cert_reqs="CERT_REQUIRED")
        return host_params, pool_kwargs

    def cert_verify(self, conn, url, verify, cert):
        # Always verify, with the shared context: requests' own version would stat the CA bundle on every
        # request (a tenth of a send's CPU here) and make urllib3 reload it on every connect.
        conn.cert_reqs = "CERT_REQUIRED"
        conn.ca_certs = conn.ca_cert_dir = None


class _Adapter(_SharedContext, HTTPAdapter):
    """Plain pooled HTTPS (QLAR_ALLOW_PRIVATE_TARGETS=1)."""


class _GuardedAdapter(_SharedContext, IPFilterAdapter):
    """requests-hardened's SSRF guard: resolves, refuses private addresses, pins the checked IP.

    The pinned IP must also pass the console's own rule (webhook_url.is_public_address), which refuses
    what the library lets through: IPv6 forms embedding an IPv4 address (::127.0.0.1), site-local.
    """

    def __init__(self):
        super().__init__(is_https_proto=True, allow_loopback=False)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        pinned = ipaddress.ip_address(host_params["host"].strip("[]").split("%")[0])
        if not is_public_address(pinned):
            raise InvalidIPAddress(pinned)
        return host_params, pool_kwargs


class Sender:
    """Posts signed bodies; each thread keeps its own adapter, whose pools keep connections alive per host."""

    def __init__(self, *, timeout: float, extra_cas: list[str], allow_private: bool):
        self.timeout, self.allow_private, self._extra_cas = timeout, allow_private, list(extra_cas)
        self._local = threading.local()
        self._watchdog = Watchdog()

    @cached_property
    def ssl_context(self) -> ssl.SSLContext:
        """The trusted CAs, loaded at the first send (loading certifi's bundle costs ~15 ms: an app that never
        sends, a CLI command or a page process, never pays it)."""
        context = ssl.create_default_context(cafile=certifi.where())
        context.minimum_version = ssl.TLSVersion.TLSv1_2  # older TLS never connects
        for path in self._extra_cas:
            context.load_verify_locations(path)
        return context

    def _adapter(self) -> HTTPAdapter:
        """This thread's connection pool: the guarded adapter, or the plain one when private targets are allowed.
        Tries go to it directly, without a requests.Session: a session would merge settings, cookies and hooks
        on every send (a fifth of a send's CPU here), keep the cookies a receiver sets, and read proxies and CA
        bundles from the environment; every scheme goes through this one adapter, so none goes unguarded."""
        adapter = getattr(self._local, "adapter", None)
        if adapter is None:
            adapter = _Adapter() if self.allow_private else _GuardedAdapter()
            adapter.ssl_context = self.ssl_context
            self._local.adapter = adapter
        return adapter

    def post(self, url: str, body: bytes, headers: dict[str, str], method: str = "POST", *,
             timeout: float | None = None) -> Outcome:
        """Send once, within the timeout as a whole (`timeout`: a shorter one for this try), and describe the
        result; never raises for network/HTTP failures."""
        limit = min(self.timeout, timeout) if timeout is not None else self.timeout
        started = time.perf_counter()
        armed = self._watchdog.arm(limit)
        try:
            outcome, response, reusable = self._exchange(url, body, headers, method, limit)
        finally:
            cut = self._watchdog.disarm(armed)  # a cut try's connection is closed there, never reused
        if response is not None:
            if reusable and not cut:  # fully read: the connection goes back to the pool for the next send
                response.raw.release_conn()
            else:  # an unread remainder, or cut: drop the connection rather than read an unbounded body
                response.close()
        if cut:
            outcome.timed_out = True
            outcome.error = (NO_RESPONSE if outcome.status is None else CUT_OFF).format(timeout=limit)
        outcome.duration_ms = (time.perf_counter() - started) * 1000
        return outcome

    def _exchange(self, url: str, body: bytes, headers: dict[str, str], method: str, limit: float):
        """The request and at most RESPONSE_EXCERPT_BYTES of the answer: (outcome, response or None, reusable)."""
        try:
            request = requests.PreparedRequest()  # its headers are case-insensitive: a try's own win over the base
            request.prepare(method=method, url=url, headers={**BASE_HEADERS, **headers}, data=body)
            response = self._adapter().send(request, stream=True, timeout=(limit, limit), verify=True)
        except InvalidIPAddress as exc:
            host = requests.utils.urlparse(url).hostname
            return Outcome(0, error=REFUSED_TARGET.format(host=host, detail=exc)), None, False
        except requests.Timeout:
            return Outcome(0, error=NO_RESPONSE.format(timeout=limit), timed_out=True), None, False
        except requests.exceptions.SSLError as exc:
            return Outcome(0, error=f"TLS error: {_reason(exc)}"), None, False
        except requests.ConnectionError as exc:
            return Outcome(0, error=f"Connection failed: {_reason(exc)}"), None, False
        except requests.RequestException as exc:
            return Outcome(0, error=f"Request failed: {_reason(exc)}"), None, False
        outcome = Outcome(0, status=response.status_code, headers=bounded_headers(response.headers))
        chunks, size, reusable = [], 0, False
        try:  # read1 a piece at a time, so what came before a cut or a break-off is kept for the trace
            while size < RESPONSE_EXCERPT_BYTES:
                chunk = response.raw.read1(RESPONSE_EXCERPT_BYTES - size, decode_content=True)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            reusable = size < RESPONSE_EXCERPT_BYTES or not response.raw.read(1)
        except Exception as exc:  # a response whose body breaks off still has its status
            outcome.error = f"The response body could not be read: {_reason(exc)}"
        outcome.body = b"".join(chunks)
        if 300 <= response.status_code < 400:
            location = _cut(response.headers.get("Location", "(no Location)"), 500)
            outcome.error = f"Redirect to {location} not followed: set the Webhook URL to the final address."
        return outcome, response, reusable


def bounded_headers(headers) -> dict[str, str]:
    """A response's headers as stored with the attempt, bounded as its body is: the first
    RESPONSE_HEADERS_KEPT, each name and value cut to its limit (marked …), and how many were left out."""
    items = list(headers.items())
    kept = {_cut(name, HEADER_NAME_CHARS): _cut(value, HEADER_VALUE_CHARS)
            for name, value in items[:RESPONSE_HEADERS_KEPT]}
    if len(items) > RESPONSE_HEADERS_KEPT:
        kept["\u2026"] = f"{len(items) - RESPONSE_HEADERS_KEPT} more headers left out"
    return kept


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def timed_out(error: str | None) -> bool:
    """Whether a stored attempt's error says the try was cut at the timeout (its 2xx, if any, does not count)."""
    return bool(error) and error.startswith("Timed out after")


def _reason(exc: Exception) -> str:
    """The innermost useful message of a requests/urllib3 exception chain."""
    while exc.args and isinstance(exc.args[0], Exception):
        exc = exc.args[0]
    reason = getattr(exc, "reason", None)
    return str(reason or exc)[:500]
