"""The account page (/account): change password, two-factor authentication (set up with a QR code, turn off
with a code), and "Sign out everywhere". It also registers the gate of QLAR_REQUIRE_2FA (login.py)."""
from flask import Blueprint, flash, make_response, redirect, render_template, session, url_for
from flask_login import current_user, login_required, logout_user

from ..crypto import secret_box
from .forms import CodeForm, EnrolForm, PasswordForm
from .login import check_require_2fa, enrolment_gate, must_enrol_2fa, second_factor_required
from .service import UserError, change_password, sign_out_everywhere
from .sessions import clear_session, renew_session
from .totp import TwoFactorError, disable, enrol, group_secret, new_secret, provisioning_uri, qr_code_data_uri

bp = Blueprint("account", __name__, url_prefix="/account")
bp.record_once(lambda state: check_require_2fa(state.app))
bp.before_app_request(enrolment_gate)

PENDING_SECRET = "_qlar_totp_pending"  # the secret being set up, encrypted under the master key


def _no_store(html: str, status: int = 200):
    """A page that shows a secret or recovery codes: never cached."""
    response = make_response(html, status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _account_page(password_form=None, code_form=None, status: int = 200):
    """The account page with its forms (those given carry the errors of a refused POST)."""
    html = render_template("auth/account.html", password_form=password_form or PasswordForm(formdata=None),
                           code_form=code_form or CodeForm(formdata=None))
    return make_response(html, status)


@bp.get("")
@login_required
def index():
    """Your account: password, two-factor authentication, sessions."""
    return _account_page()


@bp.post("/password")
@login_required
def password():
    """Change password; this browser stays signed in, every other session ends."""
    form = PasswordForm()
    if not form.validate_on_submit():
        return _account_page(password_form=form, status=422)
    user = current_user._get_current_object()
    try:
        change_password(user, form.current_password.data, form.new_password.data, form.confirm_password.data)
    except UserError as exc:
        form[exc.field or "new_password"].errors = [str(exc)]
        return _account_page(password_form=form, status=422)
    renew_session(user)
    flash("Password changed. Every other session is signed out.", "success")
    return redirect(url_for("account.index"))


@bp.post("/sign-out-everywhere")
@login_required
def sign_out_all():
    """End every session of this user, this one included."""
    sign_out_everywhere(current_user._get_current_object(), actor=current_user.username)
    logout_user()
    clear_session()
    flash("You are signed out everywhere: every browser that was signed in as you must log in again.", "success")
    return redirect(url_for("auth.login"))


@bp.route("/2fa", methods=["GET", "POST"], endpoint="enrol")
@login_required
def enrol_page():
    """Set up two-factor authentication: scan the QR code (or type the key), then confirm with a code."""
    user = current_user._get_current_object()
    if user.has_2fa:
        flash("Two-factor authentication is already on.", "success")
        return redirect(url_for("account.index"))
    box = secret_box()
    if not session.get(PENDING_SECRET):
        session[PENDING_SECRET] = box.encrypt(new_secret())
    secret = box.decrypt(session[PENDING_SECRET])
    form = EnrolForm()
    if form.validate_on_submit():
        try:
            codes = enrol(user, secret, form.code.data)
        except TwoFactorError as exc:
            form.code.errors = [str(exc)]
        else:
            session.pop(PENDING_SECRET, None)
            return _no_store(render_template("auth/recovery_codes.html", codes=codes), 201)
    uri = provisioning_uri(secret, user.username)
    html = render_template("auth/enrol.html", form=form, qr=qr_code_data_uri(uri), secret=group_secret(secret),
                           required=must_enrol_2fa(user))
    return _no_store(html, 422 if form.errors else 200)


@bp.post("/2fa/disable")
@login_required
def disable_2fa():
    """Turn two-factor authentication off, proven by a code (refused while QLAR_REQUIRE_2FA covers the role)."""
    user = current_user._get_current_object()
    form = CodeForm()
    if not form.validate_on_submit():
        return _account_page(code_form=form, status=422)
    try:
        if second_factor_required(user):
            raise TwoFactorError("Your role must use two-factor authentication: it cannot be turned off.", "code")
        disable(user, form.code.data)
    except TwoFactorError as exc:
        form.code.errors = [str(exc)]
        return _account_page(code_form=form, status=422)
    flash("Two-factor authentication is off.", "success")
    return redirect(url_for("account.index"))
