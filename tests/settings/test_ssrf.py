"""SSRF: send time refuses every non-public address in any form; Save warns for private hosts, looked up if named."""
import ipaddress
from pathlib import Path

import pytest
from apps import dispose, make_app
from helpers import PAGE, api_token, login, page_version, save_form

from qlar_console.engine.models import Event
from qlar_console.engine.send import Sender
from qlar_console.escalations import service as lifecycle
from qlar_console.extensions import db
from qlar_console.settings.service import SettingsChange, get_settings, save_settings
from qlar_console.webhook_url import (
    PRIVATE_WARNING,
    check_webhook_url,
    is_private_host,
    is_public_address,
    private_addresses,
)
from qlar_console.worker import init_dispatcher

NOT_PUBLIC = [
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "::ffff:0:127.0.0.1",  # IPv4-translated
    "fec0::1",  # site-local (deprecated)
    "::10.0.0.1", "::ffff:0:192.168.1.1", "64:ff9b::127.0.0.1", "64:ff9b:1::a00:1", "2002:7f00:1::1",
    "::ffff:127.0.0.1", "::1", "::", "fe80::1", "fc00::1", "ff02::1", "2001:db8::1", "3fff::1",
    "127.0.0.1", "10.0.0.5", "172.16.0.1", "192.168.1.10", "169.254.169.254", "100.64.0.1", "0.0.0.0",
    "192.0.0.8", "224.0.0.1", "240.0.0.1", "255.255.255.255",
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "::ffff:8.8.8.8", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e"]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_non_public_addresses_in_every_form(address):
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses(address):
    assert is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("host", ["::127.0.0.1", "::ffff:0:127.0.0.1", "fec0::1", "64:ff9b::7f00:1", "::ffff:7f00:1"])
def test_send_time_refuses_ipv6_forms_of_private_addresses(host):
    outcome = Sender(timeout=2, extra_cas=[], allow_private=False).post(f"https://[{host}]:9/hook", b"{}", {})
    assert outcome.status is None
    assert outcome.error.startswith(f"Refused: {host} resolves to a private")
    assert "QLAR_ALLOW_PRIVATE_TARGETS=1" in outcome.error


@pytest.mark.parametrize("host", ["2130706433", "0177.0.0.1", "0x7f.1", "127.1", "localhost"])
def test_send_time_refuses_numeric_and_named_loopback(host):
    outcome = Sender(timeout=2, extra_cas=[], allow_private=False).post(f"https://{host}:9/hook", b"{}", {})
    assert outcome.error.startswith("Refused:")


def test_a_delivery_to_ipv4_compatible_loopback_is_refused_and_recorded(tmp_path):
    app = make_app(tmp_path, ALLOW_PRIVATE_TARGETS=False, WORKER="external", RETRY_SCHEDULE="1h")
    try:
        with app.app_context():
            settings = get_settings("agent-123", "production")
            checked = save_settings(settings, SettingsChange(webhook_enabled=True, webhook_url="https://[::127.0.0.1]:9/h"),
                                    expected_version=settings.version, actor="test")
            assert checked.warning == PRIVATE_WARNING  # Save warns, and saves
            lifecycle.create_escalation("agent-123", "production")
        init_dispatcher(app).drain(limit=1)
        with app.app_context():
            attempt = db.session.scalar(db.select(Event)).attempts[0]
            assert attempt.response_status is None and attempt.error.startswith("Refused: ::127.0.0.1")
    finally:
        dispose(app)


@pytest.mark.parametrize("url", [
    "https://2130706433/", "https://0177.0.0.1/", "https://0x7f.1/", "https://127.1/", "https://0X7F.0.0.1:8443/x",
    "https://[::127.0.0.1]/", "https://[::ffff:0:127.0.0.1]/", "https://[fec0::1]/", "https://[::ffff:7f00:1]/",
    "https://localhost./", "https://017700000001/", "https://10.1/",
])
def test_save_warns_for_every_form_of_a_private_address_without_a_lookup(url):
    assert check_webhook_url(url, enabled=True).warning == PRIVATE_WARNING


@pytest.mark.parametrize("host", ["example.com", "8.8.8.8", "1.2.3.4.5", "0x7g.1", "xn--bcher-kva.example"])
def test_names_and_public_numbers_are_not_private_hosts(host):
    assert not is_private_host(host)


def _loopback_name_in_etc_hosts() -> str:
    """A host name /etc/hosts maps to a loopback address that the name rule alone does not catch."""
    hosts = Path("/etc/hosts")
    for line in hosts.read_text().splitlines() if hosts.exists() else []:
        fields = line.split("#")[0].split()
        if len(fields) >= 2 and ipaddress.ip_address(fields[0].split("%")[0]).is_loopback:
            for name in fields[1:]:
                if not is_private_host(name) and private_addresses(name, 2):
                    return name
    pytest.skip("no host name in /etc/hosts maps to loopback here (besides localhost)")


def test_the_lookup_finds_what_a_name_resolves_to():
    assert {"127.0.0.1", "::1"} & set(private_addresses("localhost", 2))
    assert private_addresses("localhost", 0) == []  # no time: no lookup


def test_save_warns_for_a_name_resolving_to_loopback(tmp_path):
    name = _loopback_name_in_etc_hosts()
    app = make_app(tmp_path, RESOLVE_TIMEOUT_SECONDS=2)
    try:
        client = app.test_client()
        login(client, "editor")
        version = page_version(client.get(PAGE).get_data(as_text=True))
        saved = client.post(PAGE, data=save_form(version, url=f"https://{name}:8443/hook"), follow_redirects=True)
        html = saved.get_data(as_text=True)
        assert "Escalation settings saved" in html  # the Save succeeds, with the warning
        assert 'class="flash flash-warning"' in html and "This host resolves to a private, loopback" in html
        with app.app_context():
            assert get_settings("agent-123", "production").webhook_url == f"https://{name}:8443/hook"
        # The API and the CLI say the same.
        headers = api_token(app, "editor")
        document = {**client.get("/api/v1/agents/agent-123/staging/settings", headers=headers).json,
                    "webhook": {"enabled": True, "url": f"https://{name}/"}}
        put = client.put("/api/v1/agents/agent-123/staging/settings", json=document,
                         headers={**headers, "If-Match": "*"})
        assert put.status_code == 200 and put.json["webhook"]["urlWarning"].startswith("This host resolves to")
        result = app.test_cli_runner().invoke(args=["qlar", "webhook", "set", "agent-123", "staging", "--url",
                                                    f"https://{name}/x"])
        assert result.exit_code == 0 and "Warning: This host resolves to" in result.output
    finally:
        dispose(app)


def test_save_warns_for_a_numeric_loopback_on_the_page(client, auth):
    auth.login("editor")
    version = page_version(client.get(PAGE).get_data(as_text=True))
    saved = client.post(PAGE, data=save_form(version, url="https://2130706433/hook"), follow_redirects=True)
    html = saved.get_data(as_text=True)
    assert "Escalation settings saved" in html and PRIVATE_WARNING in html


def test_without_lookup_time_a_name_is_saved_without_a_warning(tmp_path):
    app = make_app(tmp_path, RESOLVE_TIMEOUT_SECONDS=0)
    try:
        with app.app_context():
            settings = get_settings("agent-123", "production")
            checked = save_settings(settings, SettingsChange(webhook_enabled=True, webhook_url="https://localhost-x/"),
                                    expected_version=settings.version, actor="test")
        assert checked.warning is None
    finally:
        dispose(app)
