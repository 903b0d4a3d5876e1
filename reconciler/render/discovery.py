"""What discovery found in the account, for people (stderr) and for pull-request comments.

Names and reasons come from the account's answer and were made printable by
``reconciler.core.discovery.shown``; the Markdown form escapes them again for tables.
"""

from __future__ import annotations

from reconciler.core.discovery import DiscoveryReport

SHOWN_SKIPPED = 50
"""Skipped workspaces listed one by one; the rest are counted by reason."""


def discovery_lines(report: DiscoveryReport) -> list[str]:
    lines = [
        f"Discovered {len(report.found)} of {report.listed} workspace(s) in account "
        f"{report.account_id}; {len(report.skipped)} skipped."
    ]
    for skipped in report.skipped[:SHOWN_SKIPPED]:
        lines.append(f"  skipped {skipped.name}: {skipped.reason}")
    more = len(report.skipped) - SHOWN_SKIPPED
    if more > 0:
        lines.append(f"  ... and {more} more skipped")
    for name in report.missing:
        lines.append(f"  missing {name}: in the file, no longer listed by the account")
    return lines


def discovery_markdown(report: DiscoveryReport) -> str:
    lines = [
        f"**Discovery:** {len(report.found)} of {report.listed} workspace(s) in account "
        f"`{_cell(report.account_id)}` managed, {len(report.skipped)} skipped, "
        f"{len(report.missing)} missing.",
    ]
    if report.skipped or report.missing:
        lines += ["", "<details><summary>Skipped and missing workspaces</summary>", ""]
        lines += ["| workspace | why |", "|---|---|"]
        for skipped in report.skipped[: SHOWN_SKIPPED * 4]:
            lines.append(f"| {_cell(skipped.name)} | {_cell(skipped.reason)} |")
        more = len(report.skipped) - SHOWN_SKIPPED * 4
        if more > 0:
            lines.append(f"| ... | {more} more skipped |")
        for name in report.missing:
            lines.append(f"| {_cell(name)} | in the file, no longer listed by the account |")
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    out = []
    for char in text:
        if char in "\\`|*_~<>[]&#":
            out.append(f"&#{ord(char)};")
        elif not char.isprintable():
            out.append("?")
        else:
            out.append(char)
    return "".join(out)
