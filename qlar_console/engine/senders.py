"""The senders: threads that take claimed events from the hand-off and make one try each, without the database.

A try signs the frozen body afresh (request.py) and POSTs it (send.py) with the settings the claim read;
a webhook switched off, or held (its key cannot be decrypted), is not sent, and record() decides what that
means. A bug while sending never loses the try: it is recorded as failed and retried.
"""
import logging
import threading
from collections.abc import Callable

from .claim import Work
from .handoff import Handoff
from .record import Try
from .request import build_request
from .send import Outcome, Sender

log = logging.getLogger(__name__)

HIDDEN = "(custom header: value not stored)"


def try_once(work: Work, sender: Sender) -> Try:
    """Sign and send one leased event (no database): what record() needs."""
    target = work.target
    if not target.enabled:
        return Try(work, None)
    if target.held:
        return Try(work, None, held=target.held)
    if target.problem:
        return Try(work, Outcome(0, error=target.problem))
    headers = build_request(work.webhook_id, work.event_type, work.body, target.keys, synthetic=work.synthetic,
                            endpoint_id=work.endpoint_id, custom=target.headers)
    outcome = sender.post(target.url, work.body, headers)
    if target.headers:  # custom header values may be credentials: the attempt log keeps their names only
        headers = {**headers, **dict.fromkeys(target.headers, HIDDEN)}
    return Try(work, outcome, headers)


def send_loop(handoff: Handoff, sender: Sender, stop: threading.Event, poll: float,
              wake: Callable[[], None]) -> None:
    """One sender thread: try each event it takes until stopping with nothing queued; `wake` the coordinator
    when the hand-off says so."""
    while (work := handoff.take(stop, poll)) is not None:
        try:
            done = try_once(work, sender)
        except Exception as exc:  # a bug must not lose the try: it is recorded as failed and retried
            log.exception("sending %s failed", work.event_id)
            done = Try(work, Outcome(0, error=f"Internal error while sending: {exc.__class__.__name__}"))
        if handoff.sent(done):
            wake()
