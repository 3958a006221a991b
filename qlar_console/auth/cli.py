"""`flask qlar token …`: create (printed once), list and revoke API tokens; `flask qlar user …`: an admin's
sign out everywhere, role change, password reset and second-factor reset. Errors are one line and exit 1."""
import sys

import click
from flask.cli import AppGroup

from ..audit.service import CLI_ACTOR
from ..clock import utcnow
from ..errors import one_line_errors
from . import totp
from .models import ROLES, SCOPES
from .service import get_user, set_password, set_role, sign_out_everywhere
from .tokens import create_token, list_tokens, revoke_token, weaker_role_warning

token_group = AppGroup("token", help="API tokens for /api/v1 (shown once, stored hashed).")
user_group = AppGroup("user", help="Console users: sessions, role, password, second factor.")


def _whole_number(ctx, param, value):
    """Parse an integer option or argument, refusing anything else in one line (not click's usage block)."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        name = param.opts[0] if isinstance(param, click.Option) else param.human_readable_name
        raise click.ClickException(f"{name} must be a whole number, not {value!r}.") from None


def _when(moment, empty: str = "never") -> str:
    """A stored UTC time as the list shows it."""
    return moment.strftime("%Y-%m-%d %H:%M") if moment else empty


@token_group.command("create")
@click.argument("name")
@click.option("--user", "username", required=True, help="Whose token: it acts as this user.")
@click.option("--scope", "scopes", multiple=True, required=True, metavar="|".join(SCOPES),
              help="Repeat for each scope: --scope read --scope write.")
@click.option("--expires-in", "expires_in", metavar="DAYS", callback=_whole_number,
              help="Days until it expires (1 to 3650; default: never).")
@one_line_errors
def token_create(name, username, scopes, expires_in):
    """Create an API token and print it once on stdout (everything else goes to stderr)."""
    token, plaintext = create_token(name, username, list(scopes), actor=CLI_ACTOR, expires_in_days=expires_in)
    expiry = f"expires {_when(token.expires_at)} UTC" if token.expires_at else "never expires"
    click.echo(f"Created API token {token.name!r} (id {token.id}) for {token.user.username}: "
               f"{', '.join(token.scopes)}; {expiry}. It is shown only once: store it now.", err=True)
    warning = weaker_role_warning(token)
    if warning:
        click.echo(f"Warning: {warning}", err=True)
    click.echo(plaintext)


@token_group.command("list")
def token_list():
    """List API tokens, newest first (their hint only, never the token)."""
    tokens = list_tokens()
    if not tokens:
        click.echo("No API tokens yet: create one with `flask qlar token create`.", err=True)
        return
    now = utcnow()
    rows = [("ID", "NAME", "USER", "SCOPES", "HINT", "CREATED (UTC)", "EXPIRES", "LAST USED", "STATE")]
    rows += [(str(t.id), t.name, t.user.username, ",".join(t.scopes), t.hint + "…", _when(t.created_at),
              _when(t.expires_at), _when(t.last_used_at), t.state(now)) for t in tokens]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@token_group.command("revoke")
@click.argument("token_id", metavar="TOKEN_ID", callback=_whole_number)
@one_line_errors
def token_revoke(token_id):
    """Revoke an API token now (its id is in `flask qlar token list`)."""
    token = revoke_token(token_id, CLI_ACTOR)
    click.echo(f"API token {token.id} ({token.name!r} of {token.user.username}) is revoked.")


@user_group.command("sign-out-everywhere")
@click.argument("name")
@one_line_errors
def user_sign_out_everywhere(name):
    """End every session of a user: each browser signed in as NAME must log in again."""
    user = get_user(name)
    sign_out_everywhere(user, actor=CLI_ACTOR)
    click.echo(f"Every session of {user.username} is signed out.")


@user_group.command("set-role")
@click.argument("name")
@click.argument("role", type=click.Choice(ROLES))
@one_line_errors
def user_set_role(name, role):
    """Change a user's role (their sessions end, so no page keeps the old role)."""
    user = set_role(name, role, actor=CLI_ACTOR)
    click.echo(f"{user.username} is now {user.role}.")


@user_group.command("set-password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@one_line_errors
def user_set_password(name, password_stdin):
    """Reset a user's password (the same rules as create-user; their sessions end)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    user = set_password(name, password, actor=CLI_ACTOR)
    click.echo(f"Password of {user.username} changed; every session of theirs is signed out.")


@user_group.command("reset-2fa")
@click.argument("name")
@one_line_errors
def user_reset_2fa(name):
    """Remove a user's second factor (lost phone and recovery codes); they set it up again after logging in."""
    user = get_user(name)
    totp.reset(user, actor=CLI_ACTOR)
    click.echo(f"Two-factor authentication of {user.username} is removed; every session of theirs is signed out.")
