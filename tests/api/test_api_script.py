"""The README's curl pipeline, run as it stands against a live console and a real HTTPS receiver."""
import json
import os
import re
import subprocess
import time
from pathlib import Path

from apps import dispose, make_app
from helpers import api_token, served, stored_secret

from qlar_console.escalations.models import Escalation
from qlar_console.extensions import db
from qlar_console.signing import qlar_signature

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_script() -> str:
    """The bash block that follows the <!-- api-script --> marker."""
    return re.search(r"<!-- api-script -->\n```bash\n(.*?)\n```", README.read_text(), re.S).group(1)


def test_a_pipeline_with_curl_alone_configures_runs_and_sees_the_events(tmp_path, receiver, figure):
    app = make_app(tmp_path, CA_BUNDLE=str(receiver.ca_file), ALLOW_PRIVATE_TARGETS=True,
                   RETRY_SCHEDULE="200ms,200ms", TIMEOUT_SECONDS=2, LEASE_SECONDS=4)
    token = api_token(app, "editor", "read", "write", "secrets")["Authorization"].split()[1]
    app.extensions["qlar_dispatcher"].start()
    started = time.monotonic()
    try:
        with served(app) as console:
            run = subprocess.run(
                ["bash", "-c", readme_script()], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                env={**os.environ, "CONSOLE": console, "QLAR_TOKEN": token, "RECEIVER_URL": receiver.url},
            )
        took = time.monotonic() - started
        assert run.returncode == 0, run.stderr[-3000:]
        with app.app_context():
            escalation_id = db.session.scalar(db.select(Escalation.id).filter_by(claimed_by="qa-bot"))
    finally:
        dispose(app)

    secret = stored_secret(app, "staging")
    assert secret in run.stdout  # what the pipeline hands its receiver
    events = [r for r in receiver.requests
              if "X-Qlar-Test" not in r.headers and r.json["escalation"]["id"] == escalation_id]
    assert [e.json["eventType"] for e in events] == ["created", "claimed", "completed"]
    assert all(e.headers["X-Qlar-Signature"] == qlar_signature(secret, e.body) for e in events)
    documents = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    [job] = [d for d in documents if "summary" in d]
    assert job["status"] == "finished" and job["summary"]["flows"] == 5
    assert job["summary"]["failed"] == job["summary"]["pending"] == 0
    figure("api_script", f"README curl pipeline ran in {took:.1f} s")
