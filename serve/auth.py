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


ROLES = ("agent", "complaints", "marketer", "qa", "admin")  # admin: every role


@dataclass(frozen=True)
class Caller:
    kind: Literal["customer", "staff", "anonymous"]
    client: str  # the rate-limit key: customer id, staff key hash prefix, or client address
    customer_id: str | None = None
    roles: frozenset[str] = frozenset()

    @property
    def is_staff(self) -> bool:
        return self.kind == "staff"

    def has_role(self, role: str) -> bool:
        return self.is_staff and (role in self.roles or "admin" in self.roles)


def key_digest(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class StaffAuth:
    """Staff API keys. Only their SHA-256 digests are kept; a setting may already be a digest
    ("sha256:<hex>"), so the plain key need not appear in the environment at all."""

    def __init__(self, keys: list[SecretStr], roles: dict[str, str] | None = None, default_roles: str = "admin"):
        self._digests = frozenset(_as_digest(k.get_secret_value()) for k in keys if k.get_secret_value())
        self._roles = {_as_digest(key): parse_roles(value) for key, value in (roles or {}).items()}
        self._default = parse_roles(default_roles)
        self._users: dict[str, str] = {}  # staff page user name -> key digest (this worker's logins)

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def check(self, presented: str | None) -> bool:
        if not presented or not self._digests:
            return False
        digest = key_digest(presented)
        return any(hmac.compare_digest(digest, d) for d in self._digests)

    def roles_of(self, presented: str | None) -> frozenset[str]:
        if not self.check(presented):
            return frozenset()
        return self._roles.get(key_digest(presented or ""), self._default)

    def login(self, username: str, password: str) -> bool:
        """Gradio's login form: a user name, the API key as password. The page's roles come from the
        key; a user name stays bound to the key that first signed in with it on this worker, so
        one person's name cannot borrow another key's roles."""
        if not self.check(password):
            return False
        digest = key_digest(password)
        return self._users.setdefault(username, digest) == digest

    def page_roles(self, username: str | None) -> frozenset[str]:
        """The roles of a signed-in staff page user (empty for an unknown name)."""
        digest = self._users.get(username or "")
        return self._roles.get(digest, self._default) if digest else frozenset()


def parse_roles(value: str) -> frozenset[str]:
    roles = frozenset(r.strip().lower() for r in value.split(",") if r.strip())
    unknown = roles - set(ROLES)
    if unknown:
        raise ValueError(f"unknown staff role(s) {', '.join(sorted(unknown))}; one of {', '.join(ROLES)}")
    return roles


def has_any_role(roles: frozenset[str], *wanted: str) -> bool:
    return "admin" in roles or bool(roles & set(wanted))


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
        return Caller("staff", client="staff:" + key_digest(presented)[7:19], roles=staff.roles_of(presented))
    return Caller("anonymous", client="ip:" + client_addr)


# --- which staff role may call what ------------------------------------------------------------

# (method or "*", path prefix, roles allowed). The first matching rule decides; a staff path with no
# rule is open to every staff role. Customer credentials are not checked here: their endpoints
# check ownership themselves.
ROLE_RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("*", "/api/inbox", ("agent",)),
    ("*", "/api/staff/tickets", ("complaints",)),
    ("PATCH", "/api/tickets", ("complaints",)),
    ("GET", "/api/tickets", ("complaints", "agent")),
    ("*", "/api/compliance", ("marketer",)),
    ("*", "/api/marketing", ("marketer",)),
    ("*", "/api/qa", ("qa",)),
)


def roles_for(method: str, path: str) -> tuple[str, ...] | None:
    """The roles that may call this endpoint with a staff key; None when any staff role may."""
    for rule_method, prefix, roles in ROLE_RULES:
        if rule_method in ("*", method) and (path == prefix or path.startswith(prefix + "/")):
            return roles
    return None


class RoleGate:
    """ASGI middleware: a staff key whose roles do not include the endpoint's gets 403 JSON, before
    the endpoint runs. `staff` is a callable returning the StaffAuth (built with the app)."""

    def __init__(self, app, staff):
        self.app = app
        self.staff = staff

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            needed = roles_for(scope["method"], scope["path"])
            if needed is not None:
                presented = _credential(scope)
                auth = self.staff()
                if presented and auth.check(presented) and not has_any_role(auth.roles_of(presented), *needed):
                    return await _forbidden(send, needed)
        await self.app(scope, receive, send)


def _credential(scope) -> str | None:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    return bearer(headers.get("authorization")) or headers.get("x-customer-token") or headers.get("x-api-key")


async def _forbidden(send, needed: tuple[str, ...]) -> None:
    import json

    body = json.dumps({"error": {"type": "forbidden", "message": "this staff key's role may not use this endpoint",
                                 "details": {"roles": list(needed)}}}).encode()
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
