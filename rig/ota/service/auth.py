"""Who may call the service: partner tokens (given at start) and device secrets (hashed).

Tokens live only in memory, as the operator passed them; device secrets are stored as SHA-256
and compared in constant time, so the database file never holds a usable credential. A partner
may also sign in with OAuth (its `oauth` login; the tokens it gets are oauth.py's business).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from rig.ota.service.errors import OtaError
from rig.ota.service.oauth import OAuthLogin

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


@dataclass(frozen=True)
class PartnerAuth:
    """One partner the service serves: its id, its bearer token, its account id, and
    optionally an OAuth client and user to sign in with. No secret shows in its repr."""

    partner_id: str
    token: str = field(repr=False)
    account_id: str = ""
    oauth: OAuthLogin | None = None

    def __post_init__(self) -> None:
        if not ID_PATTERN.match(self.partner_id):
            raise OtaError(
                400,
                "VALIDATION",
                f"partner id {self.partner_id!r} is not usable",
                "use letters, digits, '.', '_', ':' or '-' (at most 128)",
            )
        if not self.token:
            raise OtaError(
                400,
                "VALIDATION",
                f"partner {self.partner_id!r} has an empty token",
                "give each partner a token: --partner ID --token TOKEN",
            )
        if not self.account_id:
            object.__setattr__(self, "account_id", self.partner_id)

    @classmethod
    def parse(cls, spec: str, token: str, oauth: OAuthLogin | None = None) -> PartnerAuth:
        """`lab` or `lab:ACCOUNT` (the `--partner` option) with its `--token`."""
        partner_id, _, account_id = spec.partition(":")
        return cls(partner_id, token, account_id, oauth)


def partners_by_id(
    partners: Mapping[str, PartnerAuth] | list[PartnerAuth],
) -> dict[str, PartnerAuth]:
    """Accept a dict keyed by partner id or a plain list; refuse duplicate tokens."""
    items = list(partners.values()) if isinstance(partners, Mapping) else list(partners)
    if not items:
        raise OtaError(
            400,
            "VALIDATION",
            "the OTA service needs at least one partner",
            "start it with --partner ID --token TOKEN (repeatable)",
        )
    tokens = [p.token for p in items]
    if len(set(tokens)) != len(tokens):
        raise OtaError(
            400,
            "VALIDATION",
            "two partners share one token",
            "a token must say which partner is calling: give each its own",
        )
    return {p.partner_id: p for p in items}


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(24)


def secret_matches(secret: str, stored_sha256: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_sha256)


def partner_for_token(partners: Mapping[str, PartnerAuth], token: str) -> PartnerAuth | None:
    """The partner owning `token`, compared in constant time against every token."""
    found = None
    for partner in partners.values():
        if hmac.compare_digest(partner.token.encode(), token.encode()):
            found = partner
    return found
