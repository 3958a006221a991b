"""schemathesis against the live API on loopback: all its checks, bounded examples, no 5xx, responses as documented."""
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from apps import dispose, make_app
from helpers import api_token, served

from qlar_console.engine.models import Event
from qlar_console.escalations import jobs
from qlar_console.escalations.models import SimulationJob
from qlar_console.escalations.service import create_escalation
from qlar_console.extensions import db

CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.mark.long(60)
def test_schemathesis_finds_nothing(tmp_path, database_url, figure):
    app = make_app(tmp_path, SQLALCHEMY_DATABASE_URI=database_url,
                   WORKER="external", API_RATE_LIMIT="100000 per minute")  # no sends to fuzzed URLs
    token = api_token(app, "editor", "read", "write", "secrets")["Authorization"].split()[1]
    with app.app_context():
        escalation_id = create_escalation("agent-123", "production").id
        event_id = db.session.scalar(db.select(Event.id).filter_by(escalation_id=escalation_id))
        job_id = jobs.start_job("agent-123", "staging", flows=1, wait_seconds=0, actor="test").id
        ids = {"QLAR_FUZZ_ESCALATION": escalation_id, "QLAR_FUZZ_EVENT": event_id, "QLAR_FUZZ_JOB": job_id}
    report = tmp_path / "schemathesis.json"
    try:
        with served(app) as console:
            run = subprocess.run(
                [str(Path(sys.executable).with_name("st")), "--config-file", str(CONFIG), "run",
                 f"{console}/api/v1/openapi.json", "--checks", "all", "--seed", "1",
                 "--no-color", "--report", "json", "--report-json-path", str(report)],
                env={**os.environ, **ids, "QLAR_FUZZ_TOKEN": token},
                capture_output=True, text=True, timeout=900, cwd=tmp_path,
            )
    finally:
        with app.app_context():  # the simulate jobs the fuzzer started stop at their next report
            for job in db.session.scalars(db.select(SimulationJob).filter_by(finished_at=None)):
                jobs.cancel_job(job, "test")
        for job_thread in [t for t in threading.enumerate() if t.name.startswith("qlar-job-")]:
            job_thread.join(timeout=2 * jobs.BEAT_EVERY)
        dispose(app)
    summary = json.loads(report.read_text())
    cases, operations = summary["test_cases"], summary["operations"]
    figure(f"schemathesis ({database_url.split(':')[0]})",
           f"{operations['tested']} operations, {cases['generated']} examples, {cases['unique_failures']} failures, "
           f"{summary['running_time']:.0f} s")
    assert run.returncode == 0, run.stdout[-6000:]
    assert operations["tested"] == operations["total"] and not summary["errors"]
