"""``pkgrepo schema``: print the JSON schema of the desired-state file.

The same schema drives validation and editor support, so handing it out lets an editor with
a YAML language server complete and explain the file, and lets other tools check it.
"""

from __future__ import annotations

import click

from reconciler import config
from reconciler.terminal import output


@click.command("schema")
def command() -> int:
    """Print the JSON schema (draft 2020-12) of the desired-state file.

    \b
    Point your editor at it for completion and hover help: save it, then put
    this line at the top of the YAML file (the YAML language server reads it):
      # yaml-language-server: $schema=desired-state.schema.json

    \b
    Examples:
      pkgrepo schema > desired-state.schema.json
      pkgrepo schema | jq '.properties | keys'
    """
    output.echo(config.schema_text().rstrip("\n"))
    return 0
