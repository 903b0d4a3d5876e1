"""The ``discover:`` section: from schema-valid data to a ``DiscoverySpec``, checked offline.

Everything that can be checked without the account is checked here, so ``validate`` reports
it: the account id and credential resolve, every template names known placeholders, and the
host template cannot be steered to another domain by the account's answer. Applying the
rules to what the account lists happens at plan time (``reconciler.core.discovery``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.config.build import StateBuilder
from reconciler.config.problems import JsonPath
from reconciler.config.sources import SourceKind
from reconciler.core.discovery import host_template_problem, is_loopback, template_problem
from reconciler.core.model import (
    AccountSpec,
    DeclaredEntry,
    DiscoveryRule,
    DiscoverySpec,
    frozen_map,
)
from reconciler.core.policy import FieldFact

TEMPLATE_NAME = "(discovered)"
"""The name of what every discovered workspace starts from, in policy findings."""


def _globs(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    assert isinstance(value, list)
    return tuple(str(v) for v in value)


def build_discovery(
    builder: StateBuilder,
    raw: Mapping[str, Any],
    defaults: Mapping[str, Any],
    entries: Mapping[str, Mapping[str, Any]],
) -> tuple[DiscoverySpec, dict[str, dict[str, FieldFact]]]:
    """The spec, and the policy facts of the template and of each extending entry."""
    base: JsonPath = ("discover",)
    account_raw = raw["account"]
    account_id = builder.value(
        TEMPLATE_NAME, (*base, "account", "account_id"), account_raw["account_id"], SourceKind.TEXT
    )
    facts: dict[str, dict[str, FieldFact]] = {}
    account_facts: dict[str, FieldFact] = {}
    auth = builder.auth(
        TEMPLATE_NAME, account_raw["auth"], (*base, "account", "auth"), account_facts
    )
    # Identifiers, not credentials: the account id and the principal's application id (the
    # name its ACL grants carry) must stay readable in plans and messages.
    for identifier in (account_id.value if account_id else None, auth.client_id):
        if identifier and (
            auth.client_secret is None or identifier != auth.client_secret.plaintext
        ):
            builder.secrets.discard(identifier)
    template, template_facts = builder.workspace(TEMPLATE_NAME, {}, defaults)
    template_facts.update(account_facts)
    facts[TEMPLATE_NAME] = template_facts
    extends: dict[str, DeclaredEntry] = {}
    for name, entry in entries.items():
        entry_spec, entry_facts = builder.workspace(name, entry, defaults)
        extends[name] = DeclaredEntry(entry_spec, frozenset(entry))
        facts[name] = entry_facts
    account_host = str(account_raw["host"])
    scheme, _, rest = account_host.partition("://")
    if scheme == "http" and not is_loopback(rest.split("/", 1)[0]):
        builder.problem(
            (*base, "account", "host"),
            "the account host must use https: the client secret is sent to it",
        )
    host_template = raw.get("host")
    if host_template is not None and (problem := host_template_problem(str(host_template))):
        builder.problem((*base, "host"), f"the host template {problem}")
    name_template = raw.get("name")
    if name_template is not None and (problem := template_problem(str(name_template))):
        builder.problem((*base, "name"), problem)
    rules = tuple(
        _rule(builder, (*base, "include", index), item)
        for index, item in enumerate(raw.get("include") or [{}])
    )
    spec = DiscoverySpec(
        account=AccountSpec(
            host=str(account_raw["host"]).rstrip("/"),
            account_id=account_id.value if account_id else "",
            auth=auth,
        ),
        template=template,
        rules=rules,
        exclude=_globs(raw.get("exclude")),
        statuses=tuple(raw.get("status") or ("RUNNING",)),
        host_template=None if host_template is None else str(host_template),
        name_template=None if name_template is None else str(name_template),
        extends=frozen_map(extends),
    )
    return spec, facts


def _rule(builder: StateBuilder, path: JsonPath, raw: Mapping[str, Any]) -> DiscoveryRule:
    labels = {str(k): str(v) for k, v in (raw.get("labels") or {}).items()}
    for label, template in labels.items():
        if problem := template_problem(template):
            builder.problem((*path, "labels", label), problem)
    wave = raw.get("wave")
    if isinstance(wave, str) and (problem := template_problem(wave)):
        builder.problem((*path, "wave"), problem)
    return DiscoveryRule(
        names=_globs(raw.get("name")),
        regions=_globs(raw.get("region")),
        tags=frozen_map({str(k): str(v) for k, v in (raw.get("tags") or {}).items()}),
        labels=frozen_map(labels),
        wave=None if wave is None else str(wave),
    )
