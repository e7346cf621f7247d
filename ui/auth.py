"""Who may use the app: a shared token, a user header that only named reverse proxies may set,
or both; or an API key (rag.storage.keys), which also limits the knowledge bases shown. Whether the
address the app listens on demands sign-in is rag.service.exposure's to say.

A header is believed only from a peer listed in ``ui.trusted_proxies``: anyone who reaches the
app directly could set it. With both a header and a token configured, both are asked for."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

from rag.core.config import UiSettings


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
