"""The one Flask-Limiter of the console: the API counts per token, the login per username and address.

Its storage is QLAR_RATELIMIT_STORAGE_URI (memory by default), so several processes can share counts.
Each user of it names its own key and answer (api/__init__.py, auth/throttle.py). A client's address is
request.remote_addr, which QLAR_TRUSTED_PROXIES lets ProxyFix take from X-Forwarded-For (security.py).
"""
import ipaddress

from flask import request
from flask_limiter import Limiter


def address_key() -> str:
    """The client's address as the limits count it: an IPv4 address whole, an IPv6 one by its /64 (one
    household or host holds a whole /64, so counting each address would give it 2**64 buckets)."""
    text = request.remote_addr or "unknown"
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text[:64]
    if address.version == 4:
        return str(address)
    if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d is an IPv4 client
        return str(address.ipv4_mapped)
    return str(ipaddress.ip_network(f"{address}/64", strict=False))


limiter = Limiter(key_func=address_key)
