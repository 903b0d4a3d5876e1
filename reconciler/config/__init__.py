"""Loading a desired-state file: the first stage of the pipeline (config → plan → apply).

``load`` reads the YAML defensively (``reader``), checks it against the published JSON schema
(``schema``), merges ``defaults`` under each workspace and resolves every value from literals,
the environment and files (``build``, ``sources``), and returns the pure ``DesiredState``
with the facts policy checks need (``Provenance``) and the secret values the caller must
register with ``output.register_secrets`` before printing anything.

Every problem in the file is reported in one run, each located as
``FILE:LINE:COL: json.path: message``, by raising ``InvalidConfig`` (a ``ConfigError``).
No message carries a resolved value: they are scrubbed with the secrets found so far.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from reconciler.config import reader, schema
from reconciler.config.build import StateBuilder, merge_defaults, thresholds, verify_settings
from reconciler.config.discover import build_discovery
from reconciler.config.problems import FILE_PATH, InvalidConfig, Problem, format_path
from reconciler.config.reader import MAX_ALIAS_VALUES, MAX_DEPTH, MAX_FILE_BYTES
from reconciler.config.schema import schema_text
from reconciler.core.model import DesiredState, WorkspaceSpec, frozen_map
from reconciler.core.policy import FieldFact, Provenance
from reconciler.core.redact import Scrubber

__all__ = [
    "FILE_PATH",
    "MAX_ALIAS_VALUES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "InvalidConfig",
    "LoadResult",
    "Problem",
    "format_path",
    "load",
    "merge_defaults",
    "schema_text",
]


@dataclass(frozen=True)
class LoadResult:
    desired: DesiredState
    secrets: frozenset[str] = field(repr=False)
    """Every resolved value that must never be printed (env, file, placeholders, tokens,
    URLs with literal credentials): pass them to ``output.register_secrets``."""
    provenance: Provenance
    unresolved: tuple[Problem, ...] = ()
    """Values left unresolved because their environment variables are missing; only when
    loaded with ``require_env=False`` (offline validation), else those are problems."""
    auth_as_written: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)
    """Each workspace's ``auth`` block as the file writes it, ``defaults`` merged and nothing
    resolved (``{env: NAME}`` and ``{file: PATH}`` stay references): what ``export --from``
    copies into the file it writes. Kept out of ``repr``: a token typed into the file is
    literal here."""


def load(
    path: Path, env: Mapping[str, str] | None = None, *, require_env: bool = True
) -> LoadResult:
    """Load, validate and resolve ``path``; raises ``InvalidConfig`` listing every problem.

    ``env`` defaults to ``os.environ``; ``{file: ...}`` paths are relative to the file's
    directory. Reads nothing over the network and prints nothing. With ``require_env=False``
    (``validate`` without ``--resolve``) a missing or empty environment variable leaves its
    value unresolved and is reported in ``unresolved``, not as a problem, so a file can be
    checked where the credentials it names are not available (a laptop, a fork's PR).
    """
    file = str(path)
    document = reader.read(path, file)
    unreadable = {p.json_path for p in document.problems}
    problems = [
        *document.problems,
        *(p for p in schema.check(document, file) if p.json_path not in unreadable),
    ]
    data = document.data
    if data is None:
        message = "the file is empty; it needs `version: 1` and `workspaces:`"
        raise InvalidConfig([Problem(file, 1, 1, "(root)", message)])
    if any(len(p.json_path) < 2 or p.json_path[0] == "defaults" for p in problems):
        raise InvalidConfig(problems)  # the shape every workspace builds on is broken
    assert isinstance(data, dict)  # the schema said so: no problem at the root
    broken = {
        p.json_path[1]
        for p in problems
        if p.json_path[:1] == ("workspaces",) and len(p.json_path) > 1
    }
    environ = os.environ if env is None else env
    builder = StateBuilder(document, file, path.parent, environ, require_env=require_env)
    defaults: dict[str, Any] = data.get("defaults") or {}
    specs: list[WorkspaceSpec] = []
    written: dict[str, Mapping[str, Any]] = {}
    facts: dict[str, Mapping[str, FieldFact]] = {}
    discover = data.get("discover")
    extending: dict[str, Any] = {}
    for name, raw in (data.get("workspaces") or {}).items():
        if name in broken:
            continue
        if discover is not None and "host" not in raw:
            extending[name] = raw  # extends the discovered workspace of this name
            continue
        spec, ws_facts = builder.workspace(name, raw, defaults)
        specs.append(spec)
        if auth := merge_defaults(defaults, raw).get("auth"):
            written[name] = auth
        facts[name] = frozen_map(ws_facts)
    discovery = None
    if discover is not None and not any(p.json_path[:1] == ("discover",) for p in problems):
        discovery, discovery_facts = build_discovery(builder, discover, defaults, extending)
        facts.update({name: frozen_map(f) for name, f in discovery_facts.items()})
    problems += builder.finish()
    safety = data.get("safety")
    if problems:
        scrubber = Scrubber(builder.secrets)
        scrubbed = (replace(p, message=scrubber.scrub(p.message)) for p in problems)
        error = InvalidConfig(scrubbed, builder.secrets, builder.notes)
        # The workspaces that did build are still checked by policy, so schema and policy
        # problems are reported together and fixing the file takes one round, not two.
        bad = {
            p.json_path[1]
            for p in problems
            if p.json_path[:1] == ("workspaces",) and len(p.json_path) > 1
        }
        clean = tuple(spec for spec in specs if spec.name not in bad)
        if clean:
            error.partial = LoadResult(
                desired=DesiredState(source=file, workspaces=clean),
                secrets=frozenset(builder.secrets),
                provenance=Provenance(file=file, fields=frozen_map(facts)),
            )
        raise error
    state = DesiredState(
        source=file,
        workspaces=tuple(specs),
        thresholds=thresholds(safety),
        verify=verify_settings(data.get("verify")),
        source_sha256=document.sha256,
        discovery=discovery,
    )
    return LoadResult(
        desired=state,
        secrets=frozenset(builder.secrets),
        provenance=Provenance(file=file, fields=frozen_map(facts)),
        unresolved=tuple(sorted(set(builder.notes), key=lambda p: p.sort_key)),
        auth_as_written=frozen_map(written),
    )
