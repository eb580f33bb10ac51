"""The front door fits on a page, and every relative link in the markdown resolves."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def markdown_files() -> list[Path]:
    tracked = subprocess.run(
        ["git", "ls-files", "*.md"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    return [REPO / name for name in tracked if not name.startswith(".")]


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    found = set()
    for line in path.read_text().splitlines():
        match = re.match(r"^#{1,6}\s+(.*)$", line)
        if match:
            text = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower().replace("`", ""))
            found.add(text.replace(" ", "-"))
    return found


def test_the_readme_fits_on_a_page():
    words = len((REPO / "README.md").read_text().split())
    assert words <= 1500, f"README.md has {words} words (at most 1,500; the rest goes to docs/)"


def broken_links(path: Path) -> list[str]:
    broken = []
    for target in LINK.findall(path.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("//"):
            continue  # http(s), mailto: not ours to check offline
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not resolved.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target} (no heading #{anchor} in {resolved.name})")
    return broken


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(path):
    broken = broken_links(path)
    assert not broken, f"{path.relative_to(REPO)}: " + "; ".join(broken)


def test_the_link_checker_sees_a_broken_file_and_anchor(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# Title here\n[gone](missing.md) [ok](page.md#title-here) [bad](#nowhere) "
        "[web](https://example.com)\n"
    )
    assert broken_links(page) == [
        "missing.md (no such file)",
        "#nowhere (no heading #nowhere in page.md)",
    ]
