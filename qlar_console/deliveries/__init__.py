"""Deliveries: the outbox of events, their attempts, and the delivery log."""
