"""The one base of every refusal a rule makes, and the CLI's answer to it.

Each layer maps a DomainError in one place: the CLI here (one_line_errors), the pages in
security.init_security, the API in api.problem_from_refusal (its status from problems.http_status).
"""
import functools

import click


class DomainError(Exception):
    """A rule refused the request: str(error) is the message for the user, `field` the form field it is about."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class NotFound(DomainError):
    """What the request names does not exist (HTTP 404)."""


class Conflict(DomainError):
    """What the request names is not in a state that allows it: a newer version, a status, a running job (HTTP 409)."""


class Forbidden(DomainError):
    """The user's role may not make this change, though it may make others here (HTTP 403)."""


def one_line_errors(command):
    """Decorator for a CLI command: a refusal becomes one line on stderr and exit status 1, never a traceback."""

    @functools.wraps(command)
    def wrapped(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except DomainError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapped
