"""Webhook secrets: generation, encryption at rest under the master key, and log redaction."""
import base64
import logging
import os
import re
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import Flask, current_app

from .config import is_development, read_or_create_key_file
from .errors import DomainError

SECRET_PREFIX = "whsec_"
SECRET_PATTERN = re.compile(r"whsec_[A-Za-z0-9+/=_-]*")
REDACTED = "whsec_[redacted]"
TOKEN_PREFIX = "qlar_tok_"  # API tokens: redacted from logs like webhook keys
TOKEN_PATTERN = re.compile(r"qlar_tok_[A-Za-z0-9_-]+")
MASKED = SECRET_PREFIX + "\u2022" * 24


class MasterKeyError(DomainError):
    """The master key is missing, malformed, or cannot decrypt a stored secret."""


def generate_secret() -> str:
    """Return a new webhook secret: whsec_ + base64 of 32 random bytes (Standard Webhooks form)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


class SecretBox:
    """Encrypts and decrypts webhook secrets with a MultiFernet (first key encrypts, all decrypt)."""

    def __init__(self, keys: list[str], source: str):
        try:
            self._fernet = MultiFernet([Fernet(k.strip()) for k in keys if k.strip()])
        except (ValueError, TypeError) as exc:
            raise MasterKeyError(
                f"The master key from {source} is malformed: each key must be a Fernet key "
                "(32 url-safe base64-encoded bytes, as `Fernet.generate_key()` makes)."
            ) from exc
        self.keys = [k.strip() for k in keys if k.strip()]
        self.source = source

    def encrypt(self, plaintext: str) -> str:
        """Encrypt a secret with the first master key."""
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        """Decrypt a stored secret, or raise MasterKeyError naming where the key came from."""
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise MasterKeyError(
                f"The master key from {self.source} cannot decrypt the stored webhook secret: "
                "set QLAR_MASTER_KEY to the key that encrypted it (comma-separated keys are all tried)."
            ) from None

    def rotate(self, token: str) -> str:
        """Re-encrypt a stored secret under the first master key."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            self.decrypt(token)  # raises the clear error
            raise


def master_key_path(app: Flask) -> Path:
    """Where development keeps its generated master key."""
    return Path(app.instance_path) / "master.key"


def load_secret_box(app: Flask) -> SecretBox:
    """Build the SecretBox from QLAR_MASTER_KEY, or from instance/master.key in development."""
    configured = app.config.get("MASTER_KEY")
    if configured:
        return SecretBox(str(configured).split(","), "QLAR_MASTER_KEY")
    path = master_key_path(app)
    if path.exists() or is_development(app):
        keys = read_or_create_key_file(path, lambda: Fernet.generate_key().decode())
        return SecretBox(keys.split(), str(path))
    raise MasterKeyError(
        "No master key: set QLAR_MASTER_KEY to a Fernet key (generate one with "
        "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`)."
    )


def secret_box() -> SecretBox:
    """The app's SecretBox, loaded on first use so a missing key only fails what needs it."""
    box = current_app.extensions.get("qlar_secret_box")
    if box is None:
        box = current_app.extensions["qlar_secret_box"] = load_secret_box(current_app)
    return box


def reset_secret_box() -> SecretBox:
    """Reload the master keys (after the key file changed) and return the new box."""
    current_app.extensions.pop("qlar_secret_box", None)
    return secret_box()


def write_master_key_file(path: Path, keys: list[str]) -> None:
    """Atomically replace the development master key file (mode 0600)."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a leftover .tmp keeps its old mode through O_CREAT
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(keys) + "\n")
    os.replace(tmp, path)


def redact(text: str) -> str:
    """Replace anything that looks like a webhook secret or an API token."""
    return TOKEN_PATTERN.sub(TOKEN_PREFIX + "[redacted]", SECRET_PATTERN.sub(REDACTED, text))


def install_log_redaction() -> None:
    """Make every log record, from any logger, carry its message with whsec_ keys and API tokens redacted."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "qlar_redacting", False):
        return

    def redacting_factory(*args, **kwargs):
        record = factory(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let logging report it as usual
            return record
        if "whsec_" in message or TOKEN_PREFIX in message:
            record.msg, record.args = redact(message), None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    redacting_factory.qlar_redacting = True
    logging.setLogRecordFactory(redacting_factory)
