"""The Escalations page's forms: create (the step-8 fields, prefilled from a template) and Simulate."""
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional, ValidationError

from ..settings.models import URGENCY_LEVELS
from . import scenario as scenarios
from .jobs import FLOWS, MAX_RATE
from .service import DEFAULT_TEMPLATE, FIELD_MAX_LENGTH, FIELDS, TEMPLATES

CUSTOM_SCENARIO = "custom"  # the Scenario choice that reads the Scenario JSON field

_strip = [lambda v: v.strip() if isinstance(v, str) else v]
_text = [lambda v: v.strip() if isinstance(v, str) else ""]  # left out: empty


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


class SimulateForm(FlaskForm):
    """Flows, Rate (empty: as fast as possible) and Scenario, read as start_job takes them (its limits are its own).

    Once validated, `flows`, `rate` and `script` hold the job's parameters; `values()` and `field_errors()` are
    what the page shows again.
    """

    flows = StringField("Flows", filters=_text)
    rate = StringField("Rate", filters=_text)
    scenario = StringField("Scenario", filters=_text)
    scenario_json = TextAreaField("Scenario JSON", filters=[lambda v: v if isinstance(v, str) else ""])  # as typed

    flows_value: int | None = None
    rate_value: float | None = None
    script: scenarios.Scenario | None = None

    def validate_flows(self, field) -> None:
        """Flows: a whole number (start_job checks the range)."""
        try:
            self.flows_value = int(field.data)
        except ValueError:
            raise ValidationError(f"Flows must be a whole number from {FLOWS[0]} to {FLOWS[1]}.") from None

    def validate_rate(self, field) -> None:
        """Rate: a number of flows per second, or empty."""
        try:
            self.rate_value = float(field.data) if field.data else None
        except ValueError:
            raise ValidationError(f"Rate must be a number of flows per second, at most {MAX_RATE}; "
                                  "leave it empty to run as fast as possible.") from None

    def validate(self, extra_validators=None) -> bool:
        """The fields' checks, then the scenario chosen: its refusal shows under Scenario JSON (Custom) or Scenario."""
        valid = super().validate(extra_validators)
        try:
            self.script = chosen_scenario(self.scenario.data, self.scenario_json.data)
        except scenarios.ScenarioError as exc:
            (self.scenario_json if self.scenario.data == CUSTOM_SCENARIO else self.scenario).errors.append(str(exc))
            return False
        return valid

    def values(self) -> dict[str, str]:
        """The fields as submitted, to show them again."""
        return {name: self[name].data for name in ("flows", "rate", "scenario", "scenario_json")}

    def field_errors(self) -> dict[str, str]:
        """Each field's first error, shown next to it."""
        return {name: errors[0] for name, errors in self.errors.items()}


def chosen_scenario(choice: str, pasted: str) -> scenarios.Scenario | None:
    """The Scenario field: None (Random flows), a shipped example, or the Scenario JSON pasted; ScenarioError."""
    if not choice:
        return None
    if choice == CUSTOM_SCENARIO:
        if not pasted.strip():
            raise scenarios.ScenarioError("Paste a scenario's JSON, or choose another scenario.")
        return scenarios.parse_scenario(scenarios.load_json(pasted, "The scenario JSON"))
    example = scenarios.examples().get(choice)
    if example is None:
        raise scenarios.ScenarioError("Choose a scenario from the list.")
    return example
