"""The README is a front door, and the docs' links lead somewhere.

Pure file checks, no server: the README's first two commands are `make run` and
`make test`, every relative link in it and in docs/*.md names a file or folder of
the repository (and, with a #anchor, a heading of that page), its map of the tree
matches the tree, and CI runs exactly the README's command.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from helpers import REPO_ROOT

README = REPO_ROOT / "README.md"
PAGES = [README, *sorted((REPO_ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
# [text](target) and ![alt](target); the target ends at whitespace or ')'.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def prose(text: str) -> str:
    """The text without code blocks and inline code, where brackets are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def links(text: str) -> list[str]:
    return LINK.findall(prose(text))


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    found = set()
    for heading in HEADING.findall(prose(page.read_text(encoding="utf-8"))):
        found.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return found


def ignored_by_git(path: Path) -> bool:
    checked = subprocess.run(
        ["git", "check-ignore", "-q", str(path)], cwd=REPO_ROOT, capture_output=True
    )
    return checked.returncode == 0


def broken_links(page: Path, text: str | None = None) -> list[str]:
    """The links of page (its text, or the text given) that lead nowhere."""
    broken = []
    for target in links(page.read_text(encoding="utf-8") if text is None else text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, fragment = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        where = f"{page.relative_to(REPO_ROOT)}: {target}"
        if REPO_ROOT.resolve() not in (resolved, *resolved.parents):
            broken.append(f"{where} (outside the repository)")
        elif ignored_by_git(resolved):  # whether it exists here or not
            broken.append(f"{where} (generated, not in the repository)")
        elif not resolved.exists():
            broken.append(f"{where} (no such file)")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            broken.append(f"{where} (no such heading)")
    return broken


def readme_commands(text: str) -> list[str]:
    """The commands of the README's first code block, in order (comments dropped)."""
    block = FENCE.search(text)
    assert block, "README.md has no code block"
    lines = block.group(0).splitlines()[1:-1]
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def test_the_readme_starts_with_make_run_then_make_test():
    """A newcomer's two commands: the whole job, then every test."""
    assert readme_commands(README.read_text(encoding="utf-8"))[:2] == ["make run", "make test"]


def test_readme_commands_are_read_in_order():
    text = "# x\n\n```bash\nmake test   # every test\nmake run\n```\n"
    assert readme_commands(text) == ["make test", "make run"]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_resolves(page):
    assert broken_links(page) == []


def test_a_link_that_leads_nowhere_is_caught():
    page = REPO_ROOT / "docs" / "operations.md"
    text = (
        "[gone](missing.md) [built](../reports/index.html) [anchor](warehouse.md#no-such)\n"
        "![picture](img/none.png) [outside](../../elsewhere.md)\n"
        "Fine: [page](warehouse.md) [heading](#roles) [web](https://example.com/x)\n"
        "`[code](not-a-link.md)`\n```\n[fenced](not-a-link-either.md)\n```\n"
    )
    assert broken_links(page, text) == [
        "docs/operations.md: missing.md (no such file)",
        "docs/operations.md: ../reports/index.html (generated, not in the repository)",
        "docs/operations.md: warehouse.md#no-such (no such heading)",
        "docs/operations.md: img/none.png (no such file)",
        "docs/operations.md: ../../elsewhere.md (outside the repository)",
    ]


def where_things_live() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Where things live", 1)[1]
    block = section.split("```", 2)[1]
    return [line for line in block.splitlines()[1:] if line.strip()]


def test_the_readme_map_matches_the_tree():
    entries = where_things_live()
    top_level = {line.split()[0] for line in entries if not line.startswith(" ")}
    for name in top_level:
        assert (REPO_ROOT / name).exists(), name
    # An entry indented by two is a file of the folder above it (deeper: the
    # description goes on).
    folder = None
    for line in entries:
        first = line.split()[0]
        if not line.startswith(" "):
            folder = first
        elif re.match(r"^  \S", line):
            assert (REPO_ROOT / folder / first).exists(), f"{folder}{first}"
    # And every folder of the repository is on the map.
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    folders = {f"{path.split('/')[0]}/" for path in tracked if "/" in path}
    folders -= {".github/"}
    on_map = {f"{name.split('/')[0]}/" for name in top_level}
    assert folders <= on_map, folders - on_map


def test_ci_runs_the_readmes_second_command_and_nothing_else():
    script = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    commands = [line.strip() for line in script if line.strip() and not line.startswith("#")]
    assert commands == ["set -euo pipefail", 'cd "$(dirname "$0")/.."', "make test"]
    assert "make test" in README.read_text(encoding="utf-8")
