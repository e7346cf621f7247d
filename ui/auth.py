"""Who may use the app: a shared token, a user header that only named reverse proxies may set,
or both; and whether the address the app is reachable on demands one of them.

A header is believed only from a peer listed in ``ui.trusted_proxies``: anyone who reaches the
app directly could set it. With both a header and a token configured, both are asked for."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

from rag.config import UiSettings

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


def exposure_problem(ui: UiSettings, host: str) -> str | None:
    """Why the app may not listen on ``host`` (or be published on ``ui.published_host``) as
    configured, or None."""
    where = ui.published_host or host
    if is_loopback(where) or ui.auth_token or ui.auth_header:
        return None
    return (f"the app would be reachable on {where} with no sign-in: set ui.auth_token "
            "(RAG_UI__AUTH_TOKEN), or ui.auth_header with ui.trusted_proxies behind an "
            "authenticating reverse proxy (docs/security.md)")


def proxy_trusted(peer: str | None, proxies: Sequence[str]) -> bool:
    """``peer`` (None: loopback, as Streamlit reports it) is one of the trusted proxies."""
    try:
        address = ipaddress.ip_address(peer or "127.0.0.1")
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(p, strict=False) for p in proxies)


def header_denial(ui: UiSettings, peer: str | None, headers: Mapping[str, str]) -> str | None:
    """Why a request may not in by ``ui.auth_header``, or None when it may."""
    if not proxy_trusted(peer, ui.trusted_proxies):
        return (f"requests from {peer} may not sign in by the {ui.auth_header} header (it is "
                "believed only from ui.trusted_proxies)")
    if not headers.get(ui.auth_header):
        return f"expected the {ui.auth_header} header from the reverse proxy"
    return None


def request() -> tuple[str | None, Mapping[str, str]]:
    """The peer address (None for loopback) and the headers of this browser session."""
    import streamlit as st

    return st.context.ip_address, st.context.headers
