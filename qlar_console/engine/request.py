"""The wire request: the one place the headers of a POST to a webhook are built and signed.

Deliveries (worker.py) and the receiver check's probes (settings/receiver_check.py) both send what
build_request returns, so a receiver sees one header set, whatever sent it (DESIGN.md "Wire contract").
"""
import time

from ..signing import signature_headers

VERSION = "0.1.0"
USER_AGENT = f"qlar-webhooks/{VERSION}"
TEST_HEADER = "X-Qlar-Test"
ENDPOINT_HEADER = "X-Qlar-Endpoint"
SYNTHETIC_HEADER = "X-Qlar-Synthetic"


def build_request(event_id: str, event_type: str, body: bytes, keys: list[str], *, timestamp: int | None = None,
                  test: str | None = None, synthetic: bool = False,
                  signed_body: bytes | None = None, endpoint_id: str | None = None,
                  custom: dict[str, str] | None = None) -> dict[str, str]:
    """The headers of one try of `body`, signed afresh with `keys` (current first; none: unsigned).

    `test` marks a probe (X-Qlar-Test); `synthetic` an event of the simulator, a scenario or the test
    flow (X-Qlar-Synthetic: true); `signed_body` signs other bytes than those sent (probes of a tampered body);
    `endpoint_id` names the endpoint (X-Qlar-Endpoint), `custom` is its custom headers (checked when saved
    never to name one of ours; ours are set after them all the same).
    """
    headers = dict(custom or {})
    headers.update({"Content-Type": "application/json", "User-Agent": USER_AGENT, "X-Qlar-Event": event_type})
    if endpoint_id:
        headers[ENDPOINT_HEADER] = endpoint_id
    if synthetic:
        headers[SYNTHETIC_HEADER] = "true"
    if test:
        headers[TEST_HEADER] = test
    if keys:
        stamp = int(time.time()) if timestamp is None else timestamp
        headers.update(signature_headers(keys, event_id, stamp, body if signed_body is None else signed_body))
    return headers
