"""The login form and the API tokens page's Create token form."""
from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, StringField, SubmitField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired

from ..fields import CheckboxesField
from .models import SCOPES
from .tokens import EXPIRY_CHOICES


class LoginForm(FlaskForm):
    """Username and password."""

    username = StringField("Username", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])
    submit = SubmitField("Log in")


class TokenForm(FlaskForm):
    """Create token: name, whose token, scopes, expiry. The rules live in tokens.create_token, not here."""

    name = StringField("Name", filters=[lambda v: v or ""])
    user = SelectField("User", validate_choice=False)  # choices: the users; an unknown one is the service's refusal
    scopes = CheckboxesField("Scopes", choices=[SelectChoice(s) for s in SCOPES], validate_choice=False)
    expires = SelectField("Expires", default="90d", choices=[
        SelectChoice(key, f"In {days} days" if days else "Never") for key, days in EXPIRY_CHOICES.items()])
