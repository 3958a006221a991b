"""Audit log: recording changes and the Audit log page."""
