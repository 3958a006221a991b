"""Real `flask qlar worker` processes for the tests, sharing the test app's database and settings."""
import os
import subprocess
import sys
import time
from pathlib import Path

from apps import MASTER_KEY

ROOT = Path(__file__).resolve().parent.parent


def start_worker(app, log_path: Path, *, threads: int = 1, wait: bool = True, **env) -> subprocess.Popen:
    """Start a worker process with the app's database, keys and delivery settings (and wait until it runs)."""
    cfg = app.config
    environment = {
        **os.environ,
        "FLASK_APP": "app.py",
        "QLAR_INSTANCE_PATH": app.instance_path,
        "DATABASE_URL": cfg["SQLALCHEMY_DATABASE_URI"],
        "QLAR_SECRET_KEY": "test-secret-key",
        "QLAR_MASTER_KEY": MASTER_KEY,
        "QLAR_CA_BUNDLE": cfg["CA_BUNDLE"] or "",
        "QLAR_ALLOW_PRIVATE_TARGETS": "1",
        "QLAR_TIMEOUT_SECONDS": str(cfg["TIMEOUT_SECONDS"]),
        "QLAR_LEASE_SECONDS": str(cfg["LEASE_SECONDS"]),
        "QLAR_RETRY_SCHEDULE": cfg["RETRY_SCHEDULE"],
        "QLAR_SLOWDOWN_SECONDS": str(cfg["SLOWDOWN_SECONDS"]),
        **{f"QLAR_{k}": str(v) for k, v in env.items()},
    }
    flask = Path(sys.executable).parent / "flask"
    with open(log_path, "wb") as log:  # a file, not a pipe: a chatty worker must never block on output
        process = subprocess.Popen([str(flask), "qlar", "worker", "--threads", str(threads)], cwd=ROOT,
                                   env=environment, stdout=log, stderr=subprocess.STDOUT)
    process.log_path = log_path
    if wait:
        wait_running(process)
    return process


def wait_running(process: subprocess.Popen) -> None:
    """Wait until the worker says it runs (fails, with its output, if it exits or takes too long)."""
    log_path = process.log_path
    deadline = time.monotonic() + 20
    while b"Worker running" not in log_path.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"worker did not start:\n{log_path.read_text()}")
        time.sleep(0.05)


def stop(process: subprocess.Popen) -> None:
    """Kill a worker if it still runs and reap it."""
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)
