"""Escalations: the lifecycle the simulator and the CLI drive."""
