"""Who may log in, and with what: the users and tokens of one config, indexed for logins
and per-request lookups (web passwords, stream credentials, kiosk and metrics tokens)."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field

from server.access import digest
from server.access.scope import Principal, Role
from server.access.sessions import Session, credential_fingerprint
from server.config import User, VigieConfig


@dataclass(frozen=True)
class Account:
    principal: Principal
    password_hash: str | None  # None: no web password (a partner reading RTSP only)


@dataclass(frozen=True)
class StreamAccount:
    """A user's stream credential (RTSP Digest): its HA1 by algorithm, and a fingerprint
    that changes when the credential does (open RTSP sessions made with the old one end)."""

    principal: Principal
    ha1: dict[str, str]
    fingerprint: str
    # The password itself when the config gives it (env or file): WS-Security's
    # PasswordDigest (ONVIF) needs it; None with stream_digest.
    password: str | None = field(default=None, repr=False)


def principal_of_user(user: User) -> Principal:
    role = Role(user.role)
    valid_until = user.valid_until.timestamp() if user.valid_until is not None else None
    return Principal(
        user.name, role, frozenset(user.communes) if role in (Role.POLICE, Role.PARTNER) else frozenset(),
        cameras=frozenset(user.cameras), walls=frozenset(user.walls), outputs=user.allowed_outputs,
        allowed_from=tuple(ipaddress.ip_network(net, strict=False) for net in user.allowed_from),
        valid_until=valid_until)


def stream_ha1(user: User) -> dict[str, str] | None:
    """HA1 per Digest algorithm for the user's stream credential, if it has one."""
    password = user.stream_password()
    if password is not None:
        return {name: digest.ha1(name, user.name, password) for name in ("MD5", "SHA-256")}
    if user.stream_digest is not None:
        return {"MD5": user.stream_digest.md5, "SHA-256": user.stream_digest.sha256}
    return None


class Directory:
    """Users and tokens of one config, indexed for login and per-request lookups."""

    def __init__(self, config: VigieConfig) -> None:
        self.accounts: dict[str, Account] = {}
        self.streams: dict[str, StreamAccount] = {}
        for user in config.users:
            principal = principal_of_user(user)
            self.accounts[user.name.lower()] = Account(principal, user.password_hash)
            ha1 = stream_ha1(user)
            if ha1 is not None:
                fingerprint = credential_fingerprint("stream:" + ha1["SHA-256"])
                self.streams[user.name] = StreamAccount(principal, ha1, fingerprint,
                                                        user.stream_password())
        self.tokens: dict[str, Principal] = {}
        for kiosk in config.kiosks:
            self.tokens[kiosk.token_hash] = Principal(f"kiosk:{kiosk.id}", Role.KIOSK, wall=kiosk.wall)
        if config.metrics.token_hash:
            self.tokens[config.metrics.token_hash] = Principal("metrics", Role.METRICS)

    @staticmethod
    def token_hash(token: str) -> str:
        return "sha256:" + hashlib.sha256(token.encode()).hexdigest()

    def current(self, name: str) -> tuple[Principal, str] | None:
        """A user's or token's principal now, and the fingerprint of its credential (the
        password's or token's hash): a session made with another one has ended."""
        account = self.accounts.get(name.lower())
        if account is not None:
            return account.principal, credential_fingerprint(account.password_hash or "")
        for token_hash, principal in self.tokens.items():
            if principal.name == name:
                return principal, credential_fingerprint(token_hash)
        return None

    def still_valid(self, session: Session) -> bool:
        """After a reload: is this session's principal still defined, with the same rights
        and the same password or token?"""
        return self.current(session.principal.name) == (session.principal, session.credential)
