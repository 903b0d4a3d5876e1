"""Who is calling: bearer tokens mapped to principals (users or service principals) and groups.

Identity is the same in every workspace of one emulator, as if each user were assigned to all
of them. ``admins`` makes a principal a workspace admin; ``users`` contains everybody.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

ADMINS = "admins"
USERS = "users"

ADMIN_TOKEN = "dapi-emulator-admin"
"""Default token: a workspace admin in every workspace (``admin@pkgrepo.local``)."""
USER_TOKEN = "dapi-emulator-user"
"""Default token: a plain user, member of ``users`` only (``user@pkgrepo.local``)."""

PrincipalKind = Literal["user", "service_principal"]


def stable_id(text: str, digits: int = 16) -> str:
    """A numeric id derived from a name, the same on every run (ids look like Databricks')."""
    number = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    return str(number % (10**digits)).rjust(digits, "1")


@dataclass(frozen=True)
class Principal:
    """A user (``name`` is the userName, usually an e-mail) or a service principal (``name``
    is its application id). ``groups`` need not list ``users``: everybody is in it."""

    name: str
    groups: frozenset[str] = frozenset()
    tokens: tuple[str, ...] = ()
    kind: PrincipalKind = "user"
    display_name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", frozenset(self.groups) | {USERS})
        object.__setattr__(self, "tokens", tuple(self.tokens))

    @property
    def is_admin(self) -> bool:
        return ADMINS in self.groups

    @property
    def id(self) -> str:
        return stable_id(f"principal:{self.name}")

    def __repr__(self) -> str:  # tokens are credentials: never shown
        return f"Principal({self.name!r}, groups={sorted(self.groups)!r}, kind={self.kind!r})"


DEFAULT_ADMIN = Principal(
    "admin@pkgrepo.local",
    groups=frozenset({ADMINS}),
    tokens=(ADMIN_TOKEN,),
    display_name="Emulator Admin",
)
DEFAULT_USER = Principal("user@pkgrepo.local", tokens=(USER_TOKEN,), display_name="Emulator User")


class Directory:
    """Token lookup and the set of names an ACL may name (principals and groups).

    Built once per emulator and read-only afterwards, so request threads share it freely.
    """

    def __init__(
        self,
        principals: Iterable[Principal],
        groups: Iterable[str] = (),
        *,
        default_tokens: bool = True,
    ) -> None:
        listed = tuple(principals)
        if default_tokens:
            names = {p.name for p in listed}
            listed = tuple(p for p in (DEFAULT_ADMIN, DEFAULT_USER) if p.name not in names) + listed
        by_token: dict[str, Principal] = {}
        for principal in listed:
            for token in principal.tokens:
                other = by_token.get(token)
                if other is not None and other.name != principal.name:
                    raise ValueError(f"a token of {principal.name} is also given to {other.name}")
                by_token[token] = principal
        all_groups = set(groups) | {ADMINS, USERS}
        for principal in listed:
            all_groups |= principal.groups
        self.principals = listed
        self._by_token: Mapping[str, Principal] = by_token
        self._groups = frozenset(all_groups)
        self._names = frozenset(p.name for p in listed)

    def authenticate(self, token: str) -> Principal | None:
        return self._by_token.get(token)

    def groups(self) -> frozenset[str]:
        return self._groups

    def knows(self, name: str) -> bool:
        """Whether ``name`` is an existing user, service principal or group."""
        return name in self._groups or name in self._names
