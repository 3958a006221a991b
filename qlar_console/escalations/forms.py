"""The Escalations page's create form: the step-8 fields, prefilled from a template."""
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional

from ..settings.models import URGENCY_LEVELS
from .service import FIELDS, TEMPLATES

TEMPLATE = "angry-customer"
_strip = [lambda v: v.strip() if isinstance(v, str) else v]


class CreateEscalationForm(FlaskForm):
    """Thread ID (empty = generated), urgency, topic, area, reason and trigger condition."""

    thread_id = StringField("Thread ID", filters=_strip, validators=[Optional(), Length(max=120)])
    urgency_level = SelectField("Urgency level", choices=[SelectChoice(u) for u in URGENCY_LEVELS])
    topic = StringField("Topic", filters=_strip, validators=[InputRequired("Enter a topic."), Length(max=120)])
    area = StringField("Area", filters=_strip, validators=[InputRequired("Enter an area."), Length(max=120)])
    reason = TextAreaField("Reason", filters=_strip, validators=[InputRequired("Enter a reason."), Length(max=2000)])
    trigger_condition = StringField(
        "Trigger condition", filters=_strip,
        validators=[InputRequired("Enter a trigger condition."), Length(max=120)],
    )

    @classmethod
    def prefilled(cls, template: str = TEMPLATE) -> "CreateEscalationForm":
        """A fresh form holding the template's values (the thread id is left empty: generated)."""
        return cls(formdata=None, data={FIELDS[k]: v for k, v in TEMPLATES[template].items()})

    def escalation_fields(self) -> dict[str, str]:
        """The submitted values by payload name (threadId, urgencyLevel, ...), for create_escalation."""
        return {payload: self[column].data or "" for payload, column in FIELDS.items()}
