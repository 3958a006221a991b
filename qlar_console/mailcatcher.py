"""The demo's local SMTP catcher (`make run`): alert emails are written to instance/mail/, never sent on.

An aiosmtpd server on 127.0.0.1 only; each message becomes one .eml file and one line on the console.
"""
import logging
import time
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import click

log = logging.getLogger(__name__)


class MailCatcher:
    """aiosmtpd's handler: keep each message as instance/mail/<time>-<n>.eml and say so."""

    def __init__(self, folder: Path):
        self.folder, self.count = folder, 0
        folder.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.count += 1
        path = self.folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{self.count:04d}.eml"
        path.write_bytes(envelope.content)
        subject = message_from_bytes(envelope.content, policy=default)["Subject"]
        click.echo(f" * Alert email to {', '.join(envelope.rcpt_tos)}: {subject} ({path})")
        return "250 Message accepted"


def start_mail_catcher(instance_path: str, port: int):
    """Serve the catcher on 127.0.0.1:port; returns its controller (call .stop()), or None if the port is busy."""
    from aiosmtpd.controller import Controller

    folder = Path(instance_path) / "mail"
    controller = Controller(MailCatcher(folder), hostname="127.0.0.1", port=port)
    try:
        controller.start()
    except (OSError, RuntimeError) as exc:
        click.echo(f" * Mail catcher not started: port {port} is busy ({exc}).", err=True)
        return None
    click.echo(f" * Alert emails land in {folder}/ (a local SMTP catcher on 127.0.0.1:{port}; nothing leaves "
               "this machine)")
    return controller
