"""From a schema-valid document to the pure ``DesiredState``: merge defaults, resolve values.

``defaults`` sit under every workspace and the workspace wins. The maps that hold many
independent entries (``repositories``, ``acls``, ``labels``) merge key by key, and ``null``
in a workspace removes an inherited entry; every other value is replaced whole. That includes
``auth`` and value sources, because merging ``{profile: x}`` into ``{token: ...}`` or
``{env: A}`` into ``{file: B}`` would make a value that is neither.

A value inherited from the defaults is resolved once, and a problem with it (a variable not
set) is reported once, at the defaults, naming the workspaces that need it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.config.problems import JsonPath, Problem, format_path
from reconciler.config.reader import Document
from reconciler.config.sources import (
    Resolved,
    SourceError,
    SourceKind,
    resolve,
    source_of,
    url_problem,
)
from reconciler.core.model import (
    CERT,
    EXTRA_INDEX_URLS,
    INDEX_URL,
    AclsMode,
    AuthSpec,
    Backend,
    Ensure,
    Permission,
    SecretValue,
    Thresholds,
    Tier,
    VerifySettings,
    WorkspaceSpec,
    frozen_map,
)
from reconciler.core.policy import FieldFact
from reconciler.core.redact import mask_url

MERGED_MAPS = ("repositories", "acls", "labels")
_REPOSITORY_FIELDS = (
    ("index_url", INDEX_URL),
    ("extra_index_urls", EXTRA_INDEX_URLS),
    ("cert", CERT),
)
_SHOWN_NAMES = 5


def merge_defaults(defaults: Mapping[str, Any], workspace: Mapping[str, Any]) -> dict[str, Any]:
    """The workspace's fields over the defaults (see the module docstring)."""
    merged = dict(defaults)
    for key, value in workspace.items():
        base = merged.get(key)
        if key in MERGED_MAPS and isinstance(value, dict) and isinstance(base, dict):
            merged[key] = {**base, **value}
        else:
            merged[key] = value
    return merged


def thresholds(raw: Mapping[str, Any] | None) -> Thresholds:
    raw = raw or {}
    default = Thresholds()
    return Thresholds(
        max_update_share=float(raw.get("max_update_share", default.max_update_share)),
        max_delete_workspaces=int(raw.get("max_delete_workspaces", default.max_delete_workspaces)),
        max_rotation_share=float(raw.get("max_rotation_share", default.max_rotation_share)),
    )


def verify_settings(raw: Mapping[str, Any] | None) -> VerifySettings:
    raw = raw or {}
    default = VerifySettings()
    return VerifySettings(
        project=str(raw.get("project", default.project)),
        timeout_seconds=float(raw.get("timeout_seconds", default.timeout_seconds)),
    )


@dataclass
class _Cached:
    resolved: Resolved | None
    error: str | None
    users: list[str]
    unset: tuple[str, ...] = ()


UNRESOLVED_NOTE = "checked without its value (plan, apply and `validate --resolve` need it)"


class StateBuilder:
    """Builds workspaces one by one, collecting problems, secrets and provenance facts."""

    def __init__(
        self,
        document: Document,
        file: str,
        base_dir: Path,
        env: Mapping[str, str],
        *,
        require_env: bool = True,
    ):
        self.document = document
        self.file = file
        self.base_dir = base_dir
        self.env = env
        self.require_env = require_env
        """False for offline validation: a missing variable is a note, not a problem."""
        self.problems: list[Problem] = []
        self.notes: list[Problem] = []
        """Values left unresolved because their variables are missing (offline only)."""
        self.secrets: set[str] = set()
        self._defaults: dict[JsonPath, _Cached] = {}

    def finish(self) -> list[Problem]:
        """All problems, with those of inherited values reported once at the defaults."""
        for path, cached in self._defaults.items():
            if cached.error is not None:
                names = cached.users[:_SHOWN_NAMES]
                more = len(cached.users) - len(names)
                needed = ", ".join(names) + (f" and {more} more" if more else "")
                plural = "s" if len(cached.users) > 1 else ""
                message = f"{cached.error} (needed by workspace{plural} {needed})"
                if self._offline(cached.unset):
                    self.note(path, f"{message}: {UNRESOLVED_NOTE}")
                else:
                    self.problem(path, message)
        return self.problems

    def _offline(self, unset: tuple[str, ...]) -> bool:
        return bool(unset) and not self.require_env

    def _stand_in(
        self, raw: str, kind: SourceKind, unset: tuple[str, ...]
    ) -> tuple[Resolved | None, str | None]:
        """Offline, a URL template ``${env:NAME}`` is checked with a stand-in for each missing
        variable, so what is written around it (scheme, host, port, characters, literal
        credentials) is still checked; a problem found that way is the file's own, and is
        returned as the error. Stand-ins are plain letters and digits, distinct per variable
        name (hex of the name), so they cannot collide or be malformed themselves. They are
        never planned: only ``validate`` loads offline."""
        stand_ins = {name: "unset" + name.encode().hex() for name in unset}
        try:
            return resolve(raw, kind, base_dir=self.base_dir, env={**self.env, **stand_ins}), None
        except SourceError as exc:
            self.secrets.update(s for s in exc.secrets if s)
            return None, str(exc)

    def note(self, path: JsonPath, message: str) -> None:
        self.notes.append(Problem.at(self.file, self.document.position(path), path, message))

    def problem(self, path: JsonPath, message: str) -> None:
        self.problems.append(Problem.at(self.file, self.document.position(path), path, message))

    def fact(
        self,
        path: JsonPath,
        resolved: Resolved | None = None,
        *,
        key: bool = False,
        raw: object = None,
    ) -> FieldFact:
        line, column = self.document.position(path, key=key)
        if resolved is None and raw is not None:  # unresolved, offline: how it is written
            return FieldFact(format_path(path), line, column, source_of(raw))
        if resolved is None:
            return FieldFact(format_path(path), line, column)
        return FieldFact(format_path(path), line, column, resolved.source, resolved.template)

    def value(
        self, workspace: str, path: JsonPath, raw: object, kind: SourceKind
    ) -> Resolved | None:
        """Resolve once per written value; inherited values are shared by all workspaces."""
        inherited = path[0] == "defaults"
        if inherited and path in self._defaults:
            cached = self._defaults[path]
            cached.users.append(workspace)
            return cached.resolved
        unset: tuple[str, ...] = ()
        try:
            resolved: Resolved | None = resolve(raw, kind, base_dir=self.base_dir, env=self.env)
            error = None
        except SourceError as exc:
            resolved, error, unset = None, str(exc), exc.unset
            self.secrets.update(s for s in exc.secrets if s)
            if self._offline(unset) and isinstance(raw, str) and kind is SourceKind.URL:
                resolved, stand_in_error = self._stand_in(raw, kind, unset)
                if stand_in_error is not None:  # wrong around the placeholder: say so
                    error, unset = stand_in_error, ()
        if resolved is not None:
            self.secrets.update(s for s in resolved.secrets if s)
        if inherited:
            self._defaults[path] = _Cached(resolved, error, [workspace], unset)
        elif error is not None and self._offline(unset):
            self.note(path, f"{error}: {UNRESOLVED_NOTE}")
        elif error is not None:
            self.problem(path, error)
        return resolved

    def workspace(
        self, name: str, raw: Mapping[str, Any], defaults: Mapping[str, Any]
    ) -> tuple[WorkspaceSpec, dict[str, FieldFact]]:
        merged = merge_defaults(defaults, raw)

        def origin(*field: str) -> JsonPath:
            top = raw.get(field[0])
            if field[0] in MERGED_MAPS and len(field) > 1:
                here = isinstance(top, dict) and field[1] in top
            else:
                here = field[0] in raw
            return ("workspaces", name, *field) if here else ("defaults", *field)

        facts: dict[str, FieldFact] = {"": self.fact(("workspaces", name), key=True)}
        host = str(merged.get("host") or "")  # none: a discovered workspace's, found later
        facts["host"] = self.fact(origin("host"))
        if host and (problem := url_problem(host)):
            self.problem(origin("host"), f"the host {problem}: {mask_url(host)}")
        auth = self.auth(name, merged.get("auth"), origin("auth"), facts)
        acls: dict[str, Permission] = {}
        for principal, level in (merged.get("acls") or {}).items():
            if level is not None:
                acls[principal] = Permission(level)
                facts[f"acls.{principal}"] = self.fact(origin("acls", principal))
        facts["acls"] = self.fact(origin("acls")) if "acls" in merged else facts[""]
        waivers: dict[str, str] = {}
        waiver_path = origin("waivers")
        for index, waiver in enumerate(merged.get("waivers") or []):
            check = str(waiver["check"])
            if check in waivers:
                self.problem((*waiver_path, index), f"check {check!r} is waived twice")
            waivers[check] = str(waiver["reason"])
            facts[f"waivers.{check}"] = self.fact((*waiver_path, index))
        ensure = Ensure(merged.get("ensure", Ensure.PRESENT.value))
        ignore = frozenset(str(key) for key in merged.get("ignore") or [])
        secrets: dict[str, SecretValue] = {}
        if ensure is Ensure.PRESENT:
            secrets = self.repositories(name, merged.get("repositories") or {}, origin, facts)
            for field, key in _REPOSITORY_FIELDS:
                if key in ignore and key in secrets:
                    value_origin = origin("repositories", field)
                    if value_origin[0] == "workspaces" or origin("ignore")[0] == "defaults":
                        self.problem(
                            value_origin,
                            f"{key} is set here and also listed under `ignore`; remove one",
                        )
                    del secrets[key]
        labels = {k: str(v) for k, v in (merged.get("labels") or {}).items() if v is not None}
        spec = WorkspaceSpec(
            name=name,
            host=host,
            auth=auth,
            labels=frozen_map(labels),
            wave=int(merged.get("wave", 0)),
            ensure=ensure,
            secrets=frozen_map(secrets),
            acls=frozen_map(acls),
            acls_mode=AclsMode(merged.get("acls_mode", AclsMode.EXACT.value)),
            ignore=ignore,
            waivers=frozen_map(waivers),
            tier=Tier(merged.get("tier", Tier.PREMIUM.value)),
            backend=Backend(str(merged["backend"]).upper()) if merged.get("backend") else None,
        )
        return spec, facts

    def auth(
        self, name: str, raw: Mapping[str, Any] | None, path: JsonPath, facts: dict[str, FieldFact]
    ) -> AuthSpec:
        if not raw:
            return AuthSpec()
        if "profile" in raw:
            facts["auth.profile"] = self.fact((*path, "profile"))
            return AuthSpec(kind="profile", profile=str(raw["profile"]))
        resolved: dict[str, Resolved | None] = {}
        for field, kind in (
            ("token", SourceKind.SECRET),
            ("client_id", SourceKind.TEXT),
            ("client_secret", SourceKind.SECRET),
        ):
            if field in raw:
                resolved[field] = self.value(name, (*path, field), raw[field], kind)
                facts[f"auth.{field}"] = self.fact((*path, field), resolved[field], raw=raw[field])

        def secret(field: str) -> SecretValue | None:
            found = resolved.get(field)
            return SecretValue(found.value) if found else None

        if "token" in raw:
            return AuthSpec(kind="token", token=secret("token"))
        client_id = resolved.get("client_id")
        return AuthSpec(
            kind="oauth",
            client_id=client_id.value if client_id else None,
            client_secret=secret("client_secret"),
        )

    def repositories(
        self,
        name: str,
        raw: Mapping[str, Any],
        origin: Callable[..., JsonPath],
        facts: dict[str, FieldFact],
    ) -> dict[str, SecretValue]:
        secrets: dict[str, SecretValue] = {}
        for field, key in (("index_url", INDEX_URL), ("cert", CERT)):
            if raw.get(field) is not None:
                path = origin("repositories", field)
                kind = SourceKind.URL if field == "index_url" else SourceKind.CERT
                resolved = self.value(name, path, raw[field], kind)
                facts[f"repositories.{field}"] = self.fact(path, resolved, raw=raw[field])
                if resolved is not None:
                    secrets[key] = SecretValue(resolved.value)
        items = raw.get("extra_index_urls") or []
        if items:
            path = origin("repositories", "extra_index_urls")
            facts["repositories.extra_index_urls"] = self.fact(path)
            urls: list[str] = []
            for index, item in enumerate(items):
                resolved = self.value(name, (*path, index), item, SourceKind.URL)
                facts[f"repositories.extra_index_urls[{index}]"] = self.fact(
                    (*path, index), resolved, raw=item
                )
                if resolved is not None:
                    urls.append(resolved.value)
            if len(urls) == len(items):
                secrets[EXTRA_INDEX_URLS] = SecretValue(" ".join(urls))
        return secrets
