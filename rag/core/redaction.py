"""Credentials never reach a log line, an error message or the app's pages: URIs lose their user
information and secret query parameters, and every secret the settings hold is masked wherever
it appears (a library may repeat a whole URI in its error, as pyarrow does with a bulk store
whose secret holds a '/')."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

MASK = "***"
# scheme://user:password@ : everything up to the last '@' before a space (a secret may hold '/')
_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^\s@'\"]+@")
_SECRET_PARAM = re.compile(r"(?i)([?&;][a-z0-9_-]*(?:secret|token|password|passwd|pwd|key|"
                           r"signature|sig|credential)[a-z0-9_-]*=)[^&\s'\"]+")
MIN_SECRET = 4  # shorter values would mask ordinary words
_known: set[str] = set()
_lock = threading.Lock()


def remember(secrets: Iterable[str]) -> None:
    """Mask these values (API keys, tokens, passwords) wherever they appear from now on."""
    with _lock:
        _known.update(s for s in secrets if s and len(s) >= MIN_SECRET)


def redact(text: str) -> str:
    text = _USERINFO.sub(rf"\1{MASK}@", text)
    text = _SECRET_PARAM.sub(rf"\1{MASK}", text)
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for secret in known:
        text = text.replace(secret, MASK)
    return text


def uri_secrets(uri: str) -> list[str]:
    """The user information of a URI, its password, and the pieces of a password that a URI
    parser splits at its delimiters and then quotes in an error ("Port could not be cast to
    integer value as 's3cr3t'"), for ``remember``."""
    match = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://([^\s@]+)@", uri)
    if not match:
        return []
    userinfo = match.group(1)
    password = userinfo.partition(":")[2]
    return [userinfo, password, *re.split(r"[/?#:@]", password)]


class RedactingFilter(logging.Filter):
    """Masks credentials in every record a handler emits (message, arguments, traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def redact_logs() -> None:
    """Attach the filter to every handler of the root logger (once each)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
