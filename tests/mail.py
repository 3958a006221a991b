"""A real SMTP server on loopback for the tests (aiosmtpd), keeping every message it is handed."""
import email
import email.policy
import socket
import threading
import time

from aiosmtpd.controller import Controller


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on (the kernel's choice, released at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MailServer:
    """SMTP on 127.0.0.1:port; `messages` holds the parsed emails in arrival order."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.url = f"smtp://127.0.0.1:{self.port}"
        self.messages: list[email.message.EmailMessage] = []
        self._cond = threading.Condition()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        message.envelope_to = list(envelope.rcpt_tos)
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()
        return "250 Message accepted"

    def wait_for(self, count: int, timeout: float = 15.0) -> list:
        """Block until `count` messages arrived (or fail after timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} emails, got {len(self.messages)}: "
                                         f"{[m['Subject'] for m in self.messages]}")
                self._cond.wait(left)
            return list(self.messages)

    def close(self) -> None:
        self._controller.stop()
