"""API keys scoped to knowledge bases, for the HTTP API and the app's sign-in.

A key is ``rag_<id>_<secret>``: the id finds the record, the secret is checked against its
SHA-256 digest (a random 256-bit secret needs no slow hash), so ``$RAG_HOME/keys.json`` never
holds a usable key. Roles nest: ``read`` searches and asks, ``write`` also uploads and deletes
documents, ``admin`` also creates knowledge bases and manages keys, each only on the knowledge
bases the key names (``*``: all of them, also those created later)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rag.core.errors import KeyStoreError
from rag.storage.kb import NAME

ROLES = ("read", "write", "admin")
ALL_KBS = "*"
PREFIX = "rag"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """A key's record: never the key itself."""

    id: str
    role: str
    kbs: tuple[str, ...]
    digest: str = field(repr=False)
    name: str = ""
    created: float = 0.0
    revoked: float | None = None

    def may(self, kb: str, role: str = "read") -> bool:
        """Whether this key may act as ``role`` on knowledge base ``kb``."""
        if self.revoked is not None:
            return False
        return (ALL_KBS in self.kbs or kb in self.kbs) and ROLES.index(self.role) >= ROLES.index(role)

    def readable(self, names: Sequence[str]) -> list[str]:
        return [n for n in names if self.may(n)]

    def public(self) -> dict[str, object]:
        """What listing a key shows: everything but its digest."""
        return {k: v for k, v in asdict(self).items() if k != "digest"} | {"kbs": list(self.kbs)}


class KeyStore:
    """The keys of one ``$RAG_HOME``; reads are cached per file version, so a key created or
    revoked by ``rag keys`` takes effect in a running server at its next request."""

    def __init__(self, home: Path) -> None:
        self.path = home / "keys.json"
        self._cache: tuple[tuple[int, int], dict[str, ApiKey]] | None = None

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size

    def keys(self) -> dict[str, ApiKey]:
        version = self._stat()
        if version is None:
            return {}
        if self._cache is None or self._cache[0] != version:
            try:
                rows = json.loads(self.path.read_text(encoding="utf-8"))["keys"]
                keys = {r["id"]: ApiKey(**{**r, "kbs": tuple(r["kbs"])}) for r in rows}
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise KeyStoreError(f"cannot read the API keys in {self.path}: {exc}") from None
            self._cache = (version, keys)
        return self._cache[1]

    def active(self) -> list[ApiKey]:
        return [k for k in self.keys().values() if k.revoked is None]

    def required(self) -> bool:
        """Keys are asked for once one exists (revoked ones count: revoking the last key must not
        open the server)."""
        return bool(self.keys())

    def verify(self, key: str) -> ApiKey | None:
        """The key's record if ``key`` is a valid, unrevoked key, else None."""
        parts = key.strip().split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX:
            return None
        record = self.keys().get(parts[1])
        if record is None or not hmac.compare_digest(record.digest, digest(key.strip())):
            return None
        return None if record.revoked is not None else record

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, ApiKey]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._cache = None
            keys = dict(self.keys())
            yield keys
            tmp = self.path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump({"keys": [asdict(k) for k in keys.values()]}, out, indent=1)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
            self._cache = None

    def create(self, kbs: Sequence[str], role: str, name: str = "") -> tuple[ApiKey, str]:
        """A new key for ``kbs`` (names, or ``*``) with ``role``; returns its record and the key,
        which is shown this once and never stored."""
        if role not in ROLES:
            raise KeyStoreError(f"unknown role {role!r} (choose from {', '.join(ROLES)})")
        if not kbs:
            raise KeyStoreError("name at least one knowledge base (or * for all)")
        bad = [kb for kb in kbs if kb != ALL_KBS and not NAME.fullmatch(kb)]
        if bad:
            raise KeyStoreError(f"invalid knowledge base name(s): {', '.join(map(repr, bad))}")
        with self._locked() as keys:
            key_id = secrets.token_hex(6)
            while key_id in keys:
                key_id = secrets.token_hex(6)
            key = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
            record = ApiKey(key_id, role, tuple(dict.fromkeys(kbs)), digest(key), name.strip(),
                            time.time())
            keys[key_id] = record
        return record, key

    def revoke(self, key_id: str) -> ApiKey:
        with self._locked() as keys:
            record = keys.get(key_id)
            if record is None:
                raise KeyStoreError(f"no API key with id {key_id!r} (rag keys list shows them)")
            if record.revoked is None:
                keys[key_id] = record = ApiKey(**{**asdict(record), "revoked": time.time()})
        return record
