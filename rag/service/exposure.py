"""Whether a face may listen where it is told to: beyond this machine only with sign-in.

The app (`rag ui`) needs a shared token, a trusted proxy's user header or API keys; the HTTP API
(`rag serve`) needs API keys. A container publishes on an address of its own (``published_host``,
set by docker compose), which is the one that counts there."""

from __future__ import annotations

import ipaddress

from rag.core.config import ApiSettings, UiSettings

LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    """True for names and addresses that only this machine reaches."""
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name, 0.0.0.0, ::: reachable from elsewhere


def exposure_problem(ui: UiSettings, host: str, keys: bool = False) -> str | None:
    """Why the app may not listen on ``host`` (or be published on ``ui.published_host``) as
    configured, or None. ``keys``: API keys exist, and the app then asks for one."""
    where = ui.published_host or host
    if is_loopback(where) or ui.auth_token or ui.auth_header or keys:
        return None
    return (f"the app would be reachable on {where} with no sign-in: set ui.auth_token "
            "(RAG_UI__AUTH_TOKEN), create API keys (rag keys create), or set ui.auth_header "
            "with ui.trusted_proxies behind an authenticating reverse proxy (docs/security.md)")


def api_exposure_problem(api: ApiSettings, host: str, keys: bool) -> str | None:
    """Why the API may not listen on ``host`` (or be published on ``api.published_host``)."""
    where = api.published_host or host
    if is_loopback(where) or keys:
        return None
    return (f"the API would be reachable on {where} with no API keys: create one first "
            "(rag keys create --kb NAME --role admin; docs/api.md)")
