"""The Escalations page's create form: the step-8 fields, prefilled from a template."""
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional

from ..settings.models import URGENCY_LEVELS
from .service import DEFAULT_TEMPLATE, FIELD_MAX_LENGTH, FIELDS, TEMPLATES

_strip = [lambda v: v.strip() if isinstance(v, str) else v]


def _most(field: str) -> Length:
    """The service's length limit of a field (also the input's maxlength attribute)."""
    return Length(max=FIELD_MAX_LENGTH[field])


class CreateEscalationForm(FlaskForm):
    """Thread ID (empty = generated), urgency, topic, area, reason and trigger condition."""

    thread_id = StringField("Thread ID", filters=_strip, validators=[Optional(), _most("threadId")])
    urgency_level = SelectField("Urgency level", choices=[SelectChoice(u) for u in URGENCY_LEVELS])
    topic = StringField("Topic", filters=_strip, validators=[InputRequired("Enter a topic."), _most("topic")])
    area = StringField("Area", filters=_strip, validators=[InputRequired("Enter an area."), _most("area")])
    reason = TextAreaField("Reason", filters=_strip, validators=[InputRequired("Enter a reason."), _most("reason")])
    trigger_condition = StringField(
        "Trigger condition", filters=_strip,
        validators=[InputRequired("Enter a trigger condition."), _most("triggerCondition")],
    )

    @classmethod
    def prefilled(cls, template: str = DEFAULT_TEMPLATE) -> "CreateEscalationForm":
        """A fresh form holding the template's values (the thread id is left empty: generated)."""
        return cls(formdata=None, data={FIELDS[k]: v for k, v in TEMPLATES[template].items()})

    def escalation_fields(self) -> dict[str, str]:
        """The submitted values by payload name (threadId, urgencyLevel, ...), for create_escalation."""
        return {payload: self[column].data or "" for payload, column in FIELDS.items()}
