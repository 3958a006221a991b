"""The receiver check's diagnosis: the one cause behind every failure, when every probe got the same answer."""
from ..engine.send import Outcome

ADVICE_BY_STATUS = {
    401: "even the correctly signed one: the receiver does not hold the current key (Copy it again) "
         "or does not verify the raw body",
    403: "even the correctly signed one: the receiver, a proxy or a firewall refuses qlar's requests",
    404: "check the URL path",
    405: "the URL does not take POST: check the URL path",
    410: "the endpoint says it is gone: check the URL",
}


def diagnose_outcomes(outcomes: list[Outcome]) -> str | None:
    """One diagnosis when every probe got the same non-2xx answer or the same connection error, else None."""
    answers = {(o.status, None if o.status is not None else o.error) for o in outcomes}
    if len(answers) != 1:
        return None
    status, error = answers.pop()
    if status is None:
        return (f"No probe got an answer ({error or 'no response'}): check the host name, port, "
                "TLS certificate and firewall.")
    if 200 <= status < 300:
        return None
    advice = ADVICE_BY_STATUS.get(status) or (
        "the receiver is failing: look at its logs" if status >= 500 else "check the URL and the receiver")
    return f"Endpoint answered {status} to every probe: {advice}."
