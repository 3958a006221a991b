"""QA scenarios: flows written down step by step in JSON, checked whole before anything is sent.

    {"name": "...", "steps": [{"event": "created", "escalation": {"topic": "billing"}},
                              {"event": "claimed", "by": "qa"}, {"event": "released"},
                              {"event": "claimed", "by": "qa2", "delayMs": 200},
                              {"event": "completed", "notes": "Refund issued"}]}

`flask qlar simulate --scenario FILE`, the API's simulate body and the Escalations page's form read a scenario
with parse_scenario: each step's members and values by the service's rules, and the steps walked through the
service's lifecycle (service.TRANSITIONS) on paper. run_scenario_flow then walks them for real.
"""
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..config import ROOT
from ..errors import DomainError
from . import service
from .models import PENDING

log = logging.getLogger(__name__)

EXAMPLES_DIR = ROOT / "docs" / "scenarios"  # the shipped examples: the page lists them, a test checks them
EVENTS = ("created", "claimed", "released", "completed")
MAX_STEPS = 50
MAX_DELAY_MS = 60_000
MAX_BYTES = 256 * 1024  # the largest scenario file or pasted text read
TEXT_LIMITS = {"name": 120, "description": 2000, "label": 120}  # the scenario's own texts (never sent)
COMMON_KEYS = ("event", "delayMs", "label")
STEP_KEYS = {"created": ("escalation", "template"), "claimed": ("by",), "released": (), "completed": ("notes",)}
REQUIRED = {"by": "claimedBy", "notes": "resolutionNotes"}  # a step member -> the service field it fills
DOCUMENT_KEYS = ("steps", "name", "description")
SHAPE = 'A scenario is a JSON object with "steps": a list of 1 to 50 steps, the first one "created".'


class ScenarioError(DomainError):
    """A scenario was refused: the message names the step (number and event) when it is about one.

    `field` is where, as a path in the API's simulate body: scenario, scenario/steps/2/by, ...
    """


@dataclass(frozen=True)
class Step:
    """One checked step: its number (from 1), event, delay before it, and the values it sends."""

    number: int
    event: str
    delay_ms: int = 0
    template: str = service.DEFAULT_TEMPLATE
    values: dict[str, str] = field(default_factory=dict)  # created: escalation fields; claimed: by; completed: notes


@dataclass(frozen=True)
class Scenario:
    """A checked scenario: the document as given (what a job stores) and its steps."""

    document: dict
    steps: tuple[Step, ...]

    @property
    def name(self) -> str | None:
        """The scenario's "name", if it has one."""
        return self.document.get("name")

    def as_json(self) -> str:
        """The document as indented JSON, its members in their written order (the page's Custom JSON starts so)."""
        return json.dumps(self.document, indent=2, ensure_ascii=False)

    def describe(self) -> str:
        """How a summary line or a flash names it: scenario "Name" (5 steps)."""
        name = f' "{self.name}"' if self.name else ""
        return f"scenario{name} ({len(self.steps)} step{'s' if len(self.steps) != 1 else ''})"


def parse_scenario(document) -> Scenario:
    """The scenario checked whole (members, values, lifecycle order); ScenarioError naming the first step refused."""
    if not isinstance(document, dict):
        raise ScenarioError(SHAPE, "scenario")
    for key in document:
        if key not in DOCUMENT_KEYS:
            raise ScenarioError(f'Unknown scenario member "{key}": a scenario has "steps", and may have a '
                                '"name" and a "description".', f"scenario/{key}")
    for key in ("name", "description"):
        if key in document:
            _text(document[key], key, "The scenario's", f"scenario/{key}")
    steps = document.get("steps")
    if not isinstance(steps, list) or not steps:
        raise ScenarioError(SHAPE, "scenario/steps")
    if len(steps) > MAX_STEPS:
        raise ScenarioError(f"A scenario has at most {MAX_STEPS} steps; this one has {len(steps)}.", "scenario/steps")
    status, parsed = None, []
    for number, raw in enumerate(steps, 1):
        step = _parse_step(number, raw)
        if step.event == "created":
            status = PENDING
        else:
            refusal = service.transition_refusal(step.event, status)
            if refusal:
                raise ScenarioError(f"{_prefix(step)}: {_lower(refusal)}", _path(number))
            status = service.TRANSITIONS[step.event][2]
        parsed.append(step)
    return Scenario(document, tuple(parsed))


def _parse_step(number: int, raw) -> Step:
    """One step's members and values checked (not yet its place in the lifecycle)."""
    if not isinstance(raw, dict) or raw.get("event") not in EVENTS:
        raise ScenarioError(f'Step {number}: a step is a JSON object whose "event" is one of '
                            f"{', '.join(EVENTS)}.", _path(number, "event"))
    event = raw["event"]
    prefix, allowed = f"Step {number} ({event})", (*COMMON_KEYS, *STEP_KEYS[event])
    for key in raw:
        if key not in allowed:
            takes = ", ".join(f'"{k}"' for k in allowed)
            raise ScenarioError(f'{prefix}: unknown member "{key}"; a {event} step takes {takes}.', _path(number, key))
    if (event == "created") != (number == 1):
        message = ("only the first step creates the escalation" if number > 1
                   else 'the first step creates the escalation: "event": "created"')
        raise ScenarioError(f"{prefix}: {message}.", _path(number, "event"))
    delay = raw.get("delayMs", 0)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not float(delay).is_integer() \
            or not 0 <= delay <= MAX_DELAY_MS:
        raise ScenarioError(f'{prefix}: "delayMs" must be a whole number of milliseconds from 0 to {MAX_DELAY_MS}.',
                            _path(number, "delayMs"))
    if "label" in raw:
        _text(raw["label"], "label", f"{prefix}: its", _path(number, "label"))
    step = Step(number, event, int(delay))
    if event == "created":
        return _created(step, raw)
    values = {}
    for key in STEP_KEYS[event]:
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            raise ScenarioError(f'{prefix}: "{key}" must be text.', _path(number, key))
        try:
            values[key] = service.check_required(REQUIRED[key], value)
        except service.InvalidField as exc:
            raise ScenarioError(f'{prefix}: {_lower(exc)[:-1]} ("{key}").', _path(number, key)) from None
    return Step(number, event, step.delay_ms, values=values)


def _created(step: Step, raw: dict) -> Step:
    """The created step's template and escalation fields, checked by the service's rules."""
    prefix, template, fields = _prefix(step), raw.get("template", service.DEFAULT_TEMPLATE), raw.get("escalation", {})
    if not isinstance(template, str) or template not in service.TEMPLATES:
        raise ScenarioError(f'{prefix}: "template" must be one of: {", ".join(service.TEMPLATES)}.',
                            _path(1, "template"))
    if not isinstance(fields, dict):
        raise ScenarioError(f'{prefix}: "escalation" must be a JSON object of escalation fields '
                            f"({', '.join(service.FIELDS)}).", _path(1, "escalation"))
    for key, value in fields.items():
        if key in service.FIELDS and not isinstance(value, str):
            raise ScenarioError(f'{prefix}: "escalation.{key}" must be text.', _path(1, f"escalation/{key}"))
    try:
        service.check_fields(template, fields)
    except service.InvalidField as exc:
        where = exc.field if exc.field in fields else ""
        raise ScenarioError(f'{prefix}: {_lower(exc)[:-1]} ("escalation{f".{where}" if where else ""}").',
                            _path(1, f"escalation/{where}".rstrip("/"))) from None
    return Step(1, "created", step.delay_ms, template, dict(fields))


def run_scenario_flow(agent_id: str, environment: str, scenario: Scenario,
                      sleep: Callable[[float], None] = time.sleep) -> str:
    """Walk the steps through the service (a synthetic escalation), sleeping each delayMs first; its id."""
    escalation_id = None
    for step in scenario.steps:
        if step.delay_ms:
            sleep(step.delay_ms / 1000)
        try:
            if step.event == "created":
                escalation_id = service.create_escalation(agent_id, environment, step.template, synthetic=True,
                                                          **step.values).id
            elif step.event == "claimed":
                service.claim(escalation_id, step.values["by"])
            elif step.event == "completed":
                service.complete(escalation_id, step.values["notes"])
            else:
                service.release(escalation_id)
        except service.TransitionError as exc:  # someone else moved the escalation meanwhile
            raise ScenarioError(f"{_prefix(step)} of {escalation_id}: {_lower(exc)}") from exc
    return escalation_id


def load_json(text: str | bytes, source: str):
    """The JSON document in `text` (a file's bytes, a pasted text); ScenarioError saying where it is not JSON."""
    if len(text) > MAX_BYTES:
        raise ScenarioError(f"{source} is larger than {MAX_BYTES // 1024} KB; a scenario is a few kilobytes.",
                            "scenario")
    try:
        return json.loads(text.decode("utf-8-sig") if isinstance(text, bytes) else text)
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"{source} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
                            "scenario") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{source} is not UTF-8 text.", "scenario") from None
    except RecursionError:
        raise ScenarioError(f"{source} nests too deep; a scenario nests three levels.", "scenario") from None


def load_scenario_file(path: str | Path) -> Scenario:
    """The scenario in a JSON file (`flask qlar simulate --scenario FILE`), checked whole."""
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ScenarioError(f"Cannot read the scenario file {path}: {exc.strerror or exc}.", "scenario") from None
    return parse_scenario(load_json(data, f"The scenario file {path}"))


def examples() -> dict[str, Scenario]:
    """The shipped examples (docs/scenarios/*.json) by file name without .json; a broken one is logged, left out."""
    found = {}
    for path in sorted(EXAMPLES_DIR.glob("*.json")):
        try:
            found[path.stem] = load_scenario_file(path)
        except ScenarioError as exc:
            log.error("example scenario %s left out: %s", path.name, exc)
    return found


def _text(value, key: str, whose: str, path: str) -> None:
    """A scenario's own text (name, description, label): a string within its limit that a database can keep."""
    limit = TEXT_LIMITS[key]
    if not isinstance(value, str) or len(value) > limit or not service.storable(value):
        raise ScenarioError(f'{whose} "{key}" must be text of at most {limit} characters.', path)


def _prefix(step: Step) -> str:
    return f"Step {step.number} ({step.event})"


def _path(number: int, member: str = "") -> str:
    """Where a step (or its member) is in the API's simulate body: scenario/steps/<index from 0>/<member>."""
    return f"scenario/steps/{number - 1}" + (f"/{member}" if member else "")


def _lower(message) -> str:
    """A rule's sentence continued after "Step n (event): " (an acronym such as ID keeps its capitals)."""
    text = str(message)
    return text[:1].lower() + text[1:] if text[1:2].islower() else text
