"""Forms of the Escalation page: the settings (with the webhook card) and Regenerate Key."""
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired

from ..engine.models import EVENT_TYPES
from ..fields import CheckboxesField
from .models import TRIGGER_CONDITIONS, URGENCY_LEVELS


class SettingsForm(FlaskForm):
    """Escalation behaviour plus the Webhook Notifications card (its Alerts too); the rules live in the service."""

    trigger_conditions = CheckboxesField("Trigger conditions", choices=[SelectChoice(c) for c in TRIGGER_CONDITIONS])
    default_urgency = SelectField("Default urgency", choices=[SelectChoice(u, u.title()) for u in URGENCY_LEVELS])
    claim_timeout_minutes = IntegerField(
        "Claim timeout (minutes)",
        validators=[InputRequired("Enter a number of minutes.")],  # its range is a service rule
    )
    webhook_enabled = BooleanField("Webhook")
    webhook_url = StringField("Webhook URL", filters=[lambda v: v or ""])
    retry_schedule = StringField("Retry schedule", filters=[lambda v: v or ""])  # admins only; the rule: service
    alert_emails = StringField("Alert emails", filters=[lambda v: v or ""])  # the rules: settings/alerting.py
    alert_url = StringField("Alert webhook URL", filters=[lambda v: v or ""])


GRACE_CHOICES = [
    SelectChoice("none", "No grace period (the old key stops now)"),
    SelectChoice("1h", "1 hour"),
    SelectChoice("24h", "24 hours"),
]


class RegenerateForm(FlaskForm):
    """Regenerate Key, with the grace period the previous key keeps."""

    grace = SelectField("Keep the previous key valid for", choices=GRACE_CHOICES, default="none")
    confirmed = HiddenField(default="")


class EndpointForm(FlaskForm):
    """Add endpoint (DESIGN.md, round 3); the rules live in settings/endpoints.py."""

    url = StringField("Endpoint URL", filters=[lambda v: v or ""])
    event_types = CheckboxesField("Event types", choices=[SelectChoice(t) for t in EVENT_TYPES])
    headers = TextAreaField("Headers", filters=[lambda v: v or ""])
    description = StringField("Description", filters=[lambda v: v or ""])


class EndpointPageForm(EndpointForm):
    """An additional endpoint's own page: its switch, fields, retry schedule (admins) and alerts; Save."""

    enabled = BooleanField("Endpoint")
    retry_schedule = StringField("Retry schedule", filters=[lambda v: v or ""])  # admins only
    alert_emails = StringField("Alert emails", filters=[lambda v: v or ""])
    alert_url = StringField("Alert webhook URL", filters=[lambda v: v or ""])
