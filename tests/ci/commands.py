"""Find every ``pkgrepo ...`` command line in CI files and check it against the real CLI.

The check asks the click objects themselves (``reconciler.cli.cli`` and each command's
``params``) which subcommands and options exist, so a renamed flag breaks these tests, not a
user's pipeline.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

import click

from reconciler.cli import cli

_GITHUB_EXPR = re.compile(r"\$\{\{.*?\}\}")
_HEREDOC = re.compile(r"<<-?\s*'?\"?(\w+)'?\"?[^\n]*\n.*?\n\s*\1\s*(\n|$)", re.DOTALL)
_SEPARATORS = {"|", "||", "&&", ";", "(", ")", "&", ";;", "do", "then", "else", "{", "}"}
_REDIRECTS = {">", ">>", "<", "2>", "&>"}


@dataclass(frozen=True)
class Invocation:
    words: tuple[str, ...]
    """The words after ``pkgrepo``."""
    source: str

    def __str__(self) -> str:
        return f"{self.source}: pkgrepo {' '.join(self.words)}"


def invocations(script: str, source: str) -> list[Invocation]:
    """Every ``pkgrepo`` command in a shell script (also inside ``sh -c '...'``)."""
    script = _GITHUB_EXPR.sub("X", script)
    script = _HEREDOC.sub(r"\n", script)
    script = script.replace("\\\n", " ")
    found: list[Invocation] = []
    for line in script.splitlines():  # a line ends a command, as in the shell
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        command: list[str] = []
        for token in [*lexer, ";"]:
            if token in _SEPARATORS or token in _REDIRECTS:
                found += _command(command, source)
                command = [] if token not in _REDIRECTS else ["<redirect>"]
                continue
            command.append(token)
    return found


def _command(words: list[str], source: str) -> list[Invocation]:
    if not words:
        return []
    if words[0] == "sh" and "-c" in words:
        return invocations(words[words.index("-c") + 1], source)
    if words[0] == "pkgrepo":
        return [Invocation(tuple(words[1:]), source)]
    return []


def problems(invocation: Invocation) -> list[str]:
    """What is wrong with one invocation (empty when it would parse)."""
    words = list(invocation.words)
    ctx = click.Context(cli, info_name="pkgrepo")
    wrong: list[str] = []
    words = _options(cli, words, wrong, stop_at_positional=True)
    if not words:
        return [*wrong, "no subcommand"]
    assert isinstance(cli, click.Group)
    command = cli.get_command(ctx, words[0])
    if command is None:
        return [*wrong, f"no subcommand {words[0]!r}"]
    positionals = _options(command, words[1:], wrong, stop_at_positional=False)
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    if len(positionals) != len(arguments):
        wrong.append(f"{words[0]} takes {len(arguments)} argument(s), got {positionals}")
    return wrong


def _options(
    command: click.Command, words: list[str], wrong: list[str], *, stop_at_positional: bool
) -> list[str]:
    """Check the options among ``words``; return the positional words (or the rest)."""
    options = {
        name: p
        for p in command.params
        if isinstance(p, click.Option)
        for name in (*p.opts, *p.secondary_opts)
    }
    options.update({name: _HELP for name in ("-h", "--help")})
    positionals: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if word == "<redirect>":
            break
        if not word.startswith("-") or word == "-":
            if stop_at_positional:
                return words[index - 1 :]
            positionals.append(word)
            continue
        name, eq, inline = word.partition("=")
        option = options.get(name)
        if option is None:
            wrong.append(f"{command.name}: no option {name}")
            continue
        if option is _HELP or option.is_flag or option.count:
            continue
        if eq:
            value = inline
        elif index < len(words):
            value = words[index]
            index += 1
        else:
            wrong.append(f"{command.name}: {name} needs a value")
            continue
        literal = "$" not in value and value != "X"
        if isinstance(option.type, click.Choice) and literal and value not in option.type.choices:
            wrong.append(
                f"{command.name}: {name} {value!r} is not one of {list(option.type.choices)}"
            )
    return [] if stop_at_positional else positionals


_HELP = click.Option(["--help"], is_flag=True)
