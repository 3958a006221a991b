"""The CLI-driven figures: `flask qlar simulate` on the embedded default, and the `make run` demo under a soak.

Both read the summary `flask qlar simulate` prints (escalations/simulate.py Summary.lines()).
"""
import os
import re
import signal
import subprocess
import time

import requests
from common import (
    FLASK,
    ROOT,
    SCRATCH,
    app_env,
    bench_receiver,
    cli_env,
    figure,
    free_port,
    make_app,
    point_webhook,
    rss_mb,
    run_cli,
)


def parse_summary(output: str) -> dict:
    """events, delivered, still pending and p50/p99 ms (None before any delivery) from simulate's summary."""
    counts = {name: int(re.search(rf"^{name}: (\d+)$", output, re.MULTILINE).group(1))
              for name in ("events", "delivered", "still pending")}
    timing = re.search(r"^time to delivery: p50 (\d+) ms, p99 (\d+) ms$", output, re.MULTILINE)
    return counts | {"p50": timing and int(timing.group(1)), "p99": timing and int(timing.group(2))}


def simulate_figures() -> None:
    """simulate_p50_ms / simulate_p99_ms: 500 flows at 50/s through `flask qlar simulate`, SQLite.

    The fresh database has no worker heartbeat, so the command starts its own dispatcher with the
    default settings (DISPATCHER_THREADS 2, endpoint concurrency half of that), as on a laptop.
    """
    with bench_receiver() as receiver:
        app = make_app("simulate", CA_BUNDLE=str(receiver.ca_file))
        point_webhook(app, receiver.url)
        output = run_cli(app_env(app), "qlar", "simulate", "agent-123", "production", "--flows", "500",
                         "--rate", "50")
    summary = parse_summary(output)
    figure("simulate_p50_ms", summary["p50"])
    figure("simulate_p99_ms", summary["p99"])
    figure("simulate_delivered", f"{summary['delivered']} of {summary['events']}")


def wait_for_worker(port: int, process: subprocess.Popen, log) -> None:
    """Wait until the console on port answers /metrics with one live dispatcher (its heartbeat is written)."""
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        try:
            if "qlar_workers_alive 1.0" in requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)


def soak_figures() -> None:
    """demo_soak_*: `make run`'s commands on a scratch instance and free ports, then simulate at 20 flows/s.

    The demo points staging's webhook at https://127.0.0.1:8443/webhook (demo.py RECEIVER_PORT, fixed):
    the soak re-points it at its own receiver port with `flask qlar webhook set` before serving, so a
    running `make run` is never hit. The serve process delivers (its heartbeat is live, so simulate does
    not start a dispatcher of its own); the reference receiver runs inside it, as in `make run`.
    """
    flows = int(os.environ.get("QLAR_BENCH_SOAK_FLOWS", "3000"))
    instance = SCRATCH / "soak"
    instance.mkdir(exist_ok=True)
    port, receiver_port = free_port(), free_port()
    env = cli_env(instance, f"sqlite:///{instance / 'qlar.db'}")
    run_cli(env, "db", "upgrade")
    run_cli(env, "qlar", "demo")
    run_cli(env, "qlar", "webhook", "set", "agent-123", "staging", "--url",
            f"https://127.0.0.1:{receiver_port}/webhook")
    log = SCRATCH / "soak-serve.log"
    serve = subprocess.Popen([FLASK, "qlar", "serve", "--host", "127.0.0.1", "--port", str(port),
                              "--receiver-port", str(receiver_port)], cwd=ROOT, env=env,
                             stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)  # noqa: SIM115
    try:
        wait_for_worker(port, serve, log)
        before = rss_mb(serve.pid)
        output = run_cli(env, "qlar", "simulate", "agent-123", "staging", "--flows", str(flows), "--rate", "20",
                         timeout=flows / 20 + 600)
        after = rss_mb(serve.pid)
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()
    summary = parse_summary(output)
    figure("demo_soak_p50_ms", summary["p50"])
    figure("demo_soak_p99_ms", summary["p99"])
    figure("demo_soak_delivered", f"{summary['delivered']} of {summary['events']} ({flows} flows)")
    figure("serve_rss_growth_mb", f"{after - before:.1f} ({before:.0f} -> {after:.0f} MB)")
