"""The login forms (password, then the code of a second factor), the account page's forms, and the API tokens
page's Create token form. The rules live in service.py and totp.py, not here."""
from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, StringField, SubmitField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired

from ..fields import CheckboxesField
from .models import ROLES, SCOPES
from .tokens import EXPIRY_CHOICES


class LoginForm(FlaskForm):
    """Username and password."""

    username = StringField("Username", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])
    submit = SubmitField("Log in")


class CodeForm(FlaskForm):
    """The second login step, and turning the second factor off: a code from the app, or a recovery code."""

    code = StringField("Authentication code", validators=[DataRequired()])
    submit = SubmitField("Verify")


class EnrolForm(FlaskForm):
    """Setting up the second factor: the first code the app shows proves it holds the secret."""

    code = StringField("Code from the app", validators=[DataRequired()])
    submit = SubmitField("Turn on")


class PasswordForm(FlaskForm):
    """Change password: the current one, and the new one twice."""

    current_password = PasswordField("Current password", validators=[DataRequired()])
    new_password = PasswordField("New password", validators=[DataRequired()])
    confirm_password = PasswordField("Repeat the new password", validators=[DataRequired()])
    submit = SubmitField("Change password")


class TokenForm(FlaskForm):
    """Create token: name, whose token, scopes, expiry. The rules live in tokens.create_token, not here."""

    name = StringField("Name", filters=[lambda v: v or ""])
    user = SelectField("User", validate_choice=False)  # choices: the users; an unknown one is the service's refusal
    scopes = CheckboxesField("Scopes", choices=[SelectChoice(s) for s in SCOPES], validate_choice=False)
    expires = SelectField("Expires", default="90d", choices=[
        SelectChoice(key, f"In {days} days" if days else "Never") for key, days in EXPIRY_CHOICES.items()])


class UserForm(FlaskForm):
    """Add user (the Users page): username and role; the first password is made for them."""

    username = StringField("Username", filters=[lambda v: v or ""])
    role = SelectField("Role", default="viewer", choices=[SelectChoice(role, role.capitalize()) for role in ROLES])
    submit = SubmitField("Add user")

