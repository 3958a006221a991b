"""One definition of "now" (naive UTC datetimes, the same on SQLite and PostgreSQL), and of a typed day."""
import re
from datetime import UTC, date, datetime

DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def utcnow() -> datetime:
    """Return the current time as a naive UTC datetime (how every column stores it)."""
    return datetime.now(UTC).replace(tzinfo=None)


def parse_day(text: str) -> date | None:
    """The day written YYYY-MM-DD (the form a date field sends), or None for anything else."""
    if not DAY.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:  # 2024-02-30
        return None


def day_argument(args, name: str, label: str, error: type[Exception]) -> date | None:
    """The day a From or To field (query argument `name`) holds, None when empty; `error(message, name)` else."""
    value = (args.get(name) or "").strip()
    if not value:
        return None
    day = parse_day(value)
    if day is None:
        shown = value if len(value) <= 30 else value[:30] + "…"
        raise error(f"{label} must be a date written YYYY-MM-DD, such as 2024-05-31; got {shown!r}.", name)
    return day
