"""The reference receiver: verifies, routes and traces qlar webhooks over HTTPS (DESIGN.md "Reference receiver")."""
from .app import (
    ReceiverState,
    create_receiver_app,
    make_receiver_server,
    receiver_options,
    receiver_state,
    serve_receiver_in_thread,
)
from .certs import CertPaths, ensure_local_ca, ssl_context
from .seen import SeenEvents
from .store import InvalidReceiverKey, InvalidReceiverSetting, fingerprint

__all__ = [
    "CertPaths",
    "InvalidReceiverKey",
    "InvalidReceiverSetting",
    "ReceiverState",
    "SeenEvents",
    "create_receiver_app",
    "ensure_local_ca",
    "fingerprint",
    "make_receiver_server",
    "receiver_options",
    "receiver_state",
    "serve_receiver_in_thread",
    "ssl_context",
]
