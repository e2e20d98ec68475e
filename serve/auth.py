"""Who is calling: staff (API key, compared by hash) or a customer (signed session token).

A conversation id alone never grants access: every conversation and ticket is looked up with
the customer id that the caller's token proves."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import SecretStr

from assistant.config import Settings
from assistant.types import new_id

TOKEN_PREFIX = "mct_"  # Meadow customer token


@dataclass(frozen=True)
class Caller:
    kind: Literal["customer", "staff", "anonymous"]
    client: str  # the rate-limit key: customer id, staff key hash prefix, or client address
    customer_id: str | None = None

    @property
    def is_staff(self) -> bool:
        return self.kind == "staff"


def key_digest(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class StaffAuth:
    """Staff API keys. Only their SHA-256 digests are kept; a setting may already be a digest
    ("sha256:<hex>"), so the plain key need not appear in the environment at all."""

    def __init__(self, keys: list[SecretStr]):
        self._digests = frozenset(_as_digest(k.get_secret_value()) for k in keys if k.get_secret_value())

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def check(self, presented: str | None) -> bool:
        if not presented or not self._digests:
            return False
        digest = key_digest(presented)
        return any(hmac.compare_digest(digest, d) for d in self._digests)

    def login(self, _username: str, password: str) -> bool:
        """Gradio's login form: any user name, the API key as password."""
        return self.check(password)


def _as_digest(value: str) -> str:
    return value if value.startswith("sha256:") and len(value) == 71 else key_digest(value)


class CustomerTokens:
    """`mct_<customer id>.<hmac>`: stateless, so any worker can verify it."""

    def __init__(self, secret: bytes):
        self._secret = secret

    def issue(self, customer_id: str | None = None) -> tuple[str, str]:
        customer_id = customer_id or new_id("cust_")
        return customer_id, f"{TOKEN_PREFIX}{customer_id}.{self._sign(customer_id)}"

    def verify(self, token: str | None) -> str | None:
        if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        customer_id, _, signature = token[len(TOKEN_PREFIX):].rpartition(".")
        if not customer_id or not hmac.compare_digest(signature, self._sign(customer_id)):
            return None
        return customer_id

    def _sign(self, customer_id: str) -> str:
        mac = hmac.new(self._secret, customer_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def session_secret(settings: Settings) -> bytes:
    """The configured secret, or one kept in data_dir (created once, shared by local workers)."""
    if settings.session_secret is not None and settings.session_secret.get_secret_value():
        return settings.session_secret.get_secret_value().encode()
    path = settings.data_dir / "session_secret"
    if not path.exists():
        _create_once(path, secrets.token_hex(32))
    return path.read_text().strip().encode()


def _create_once(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(value)
    os.chmod(tmp, 0o600)
    try:
        os.link(tmp, path)  # atomic; the loser of a race between workers reads the winner's
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def identify(staff: StaffAuth, tokens: CustomerTokens, presented: str | None, client_addr: str) -> Caller:
    """Map a presented credential to a caller. Unknown credentials count as anonymous."""
    customer_id = tokens.verify(presented)
    if customer_id:
        return Caller("customer", client=customer_id, customer_id=customer_id)
    if presented and staff.check(presented):
        return Caller("staff", client="staff:" + key_digest(presented)[7:19])
    return Caller("anonymous", client="ip:" + client_addr)
