"""The delivery engine: from a committed event to a recorded try, one step a module.

    outbox.py        enqueue an event in the transition's transaction; queue events again (Resend)
    claim.py         lease a batch of due events, in per-escalation order, with their endpoints' settings
    request.py       build the wire request: headers, signed (signing.py holds the HMACs)
    send.py          POST it: pooled keep-alive connections, TLS verified, SSRF-guarded, never redirected
    retry.py         decide: delivered, retry when (schedule, jitter, Retry-After, slow-down), or failed
    record.py        store a batch of tries and decisions in one transaction
    worker.py        the loop: a coordinator that claims and records, sender threads that send
    wakeup.py        wake workers at once when work is written (Unix datagram or LISTEN/NOTIFY)
    housekeeping.py  heartbeats and the purge of old traces
    models.py        the tables: events, attempts, heartbeats, daily counters

The engine imports no feature package: the app gives it the endpoints (`resolve`) and what to do on
410 Gone (`on_gone`) when it builds the Dispatcher (qlar_console/worker.py: init_dispatcher).
"""
