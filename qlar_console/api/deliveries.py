"""/api/v1 deliveries: the log, one event with its attempts, Resend, and the receiver check."""
from . import api_blueprint

bp = api_blueprint("Deliveries", "The delivery log, events and their attempts, Resend, the receiver check.")
