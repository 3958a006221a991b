"""Small helpers shared by the tests (imported explicitly, never star-imported)."""
import re

PAGE = "/agents/agent-123/production/escalation"


def page_version(html: str) -> int:
    """The optimistic-locking version the Escalation page's form carries."""
    return int(re.search(r'name="version" value="(\d+)"', html).group(1))


def save_form(version: int, url: str = "https://example.com/hooks/qlar", enabled: bool = True, **extra) -> dict:
    """The fields a browser posts when Save is pressed."""
    data = {"webhook_url": url, "version": str(version), "default_urgency": "high",
            "claim_timeout_minutes": "30", "trigger_conditions": "Angry Customer Escalation"}
    if enabled:
        data["webhook_enabled"] = "y"
    data.update(extra)
    return data
