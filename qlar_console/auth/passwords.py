"""Password hashes and rules: Argon2id for every new hash, older werkzeug hashes still verify (and are re-hashed
at the next login: service.authenticate), and the strength rule create-user and the account page share."""
import functools
import secrets

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, has_app_context
from werkzeug.security import check_password_hash
from zxcvbn import zxcvbn

MIN_LENGTH = 12
MAX_LENGTH = 1024  # nobody types more
MIN_SCORE = 3  # zxcvbn's scale 0-4: 3 is "safely unguessable" for an online attack
ZXCVBN_MAX = 72  # zxcvbn rates this much of a password (its own limit): strong there is strong
ARGON2_PREFIX = "$argon2id$"

DEFAULT_PROFILE = "RFC_9106_LOW_MEMORY"  # argon2-cffi's default: Argon2id, 64 MiB, t=3, p=4 (~0.2 s here)


@functools.cache
def _hasher_for(profile: str) -> tuple[PasswordHasher, str]:
    """The hasher of an argon2-cffi profile and a hash of a random password made with it (burn_verification)."""
    hasher = PasswordHasher.from_parameters(getattr(profiles, profile))
    return hasher, hasher.hash(secrets.token_urlsafe(16))


def _profile() -> str:
    """The argon2-cffi profile: the default, or in tests (TESTING) their ARGON2_PROFILE (CHEAPEST, for speed)."""
    if has_app_context() and current_app.testing:
        return current_app.config.get("ARGON2_PROFILE", DEFAULT_PROFILE)
    return DEFAULT_PROFILE


def _hasher() -> PasswordHasher:
    """The hasher of the app's profile."""
    return _hasher_for(_profile())[0]


def hash_password(password: str) -> str:
    """An Argon2id hash of the password (salted, in PHC string form)."""
    return _hasher().hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """True when password matches the stored hash, Argon2id or an older werkzeug (scrypt, pbkdf2) one."""
    if stored_hash.startswith("$argon2"):
        try:
            return _hasher().verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False
    try:
        return check_password_hash(stored_hash, password)
    except ValueError:  # a hash werkzeug cannot read: it matches nothing
        return False


def needs_rehash(stored_hash: str) -> bool:
    """True when the hash is not Argon2id with today's parameters (re-hash it at the next successful login)."""
    if not stored_hash.startswith(ARGON2_PREFIX):
        return True
    try:
        return _hasher().check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


def burn_verification(password: str) -> None:
    """Do the work of checking a password against a real hash, for a username that does not exist.

    Unknown and known usernames then take the same time, so timing does not tell which names exist.
    """
    verify_password(_hasher_for(_profile())[1], password)


def password_problem(password: str, username: str = "") -> str | None:
    """Why this password is refused (too short, too long, or weak by zxcvbn, with its reason), or None."""
    if len(password) < MIN_LENGTH:
        return f"Password must be at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"Password must be at most {MAX_LENGTH} characters."
    words = [username, "qlar", "console", "admin"] if username else ["qlar", "console"]
    result = zxcvbn(password[:ZXCVBN_MAX], user_inputs=words)  # its time grows steeply with the length
    if result["score"] >= MIN_SCORE:
        return None
    feedback = result["feedback"]
    reasons = [feedback.get("warning") or "It is easy to guess."] + list(feedback.get("suggestions") or [])
    return "Password is too weak: " + " ".join(r.strip() for r in reasons if r.strip())
