"""The README stays short and true: no database, only the files of the repository.

It is at most 160 lines; every `make` target it names is a target of the Makefile; every
repository path it names (in code or as a link) exists; every page in docs/ is linked from its
docs map; and neither it nor docs/ cites issue numbers.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
DOCS_MAP_HEADING = "## Documentation"

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# `make -s env ROLE=reader`, `make api`, `make stream-up && make consume`: the first target.
MAKE_TARGET = re.compile(r"(?<![\w-])make((?:\s+-[a-zA-Z]+)*)\s+([a-z][a-z0-9-]*)(?![\w=-])")
MAKEFILE_RULE = re.compile(r"^([a-zA-Z0-9_.-]+(?:\s+[a-zA-Z0-9_.-]+)*)\s*:(?!=)", re.MULTILINE)
# A path into one of the repository's folders: loader/copy_csv.py, docs/api.md, data/sample/.
TOP_DIRS = (
    "docs|loader|stream|api|report|bench|tests|models|macros|scripts|data|seeds|analyses|packages|\\.ci"
)
REPO_PATH = re.compile(rf"(?<![\w./~$-])((?:{TOP_DIRS})/[\w./*<>-]*)")
ROOT_FILE = re.compile(r"^(?:Makefile|[\w.-]+\.(?:txt|yml|yaml|toml|cfg|ini|md|py|sh|sql))$")
ISSUE_NUMBER = re.compile(r"(?<![\w/&])#\d+\b|\bissues? #?\d+\b", re.IGNORECASE)


def readme() -> str:
    return README.read_text(encoding="utf-8")


def code_of(text: str) -> list[str]:
    """The fenced blocks and the inline code spans outside them."""
    blocks = FENCE.findall(text)
    return blocks + INLINE_CODE.findall(FENCE.sub("", text))


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets: set[str] = set()
    for rule in MAKEFILE_RULE.findall(text):
        targets.update(name for name in rule.split() if not name.startswith("."))
    return targets


def exists(path: str) -> bool:
    path = path.rstrip(".,;:")
    if "<" in path:  # a placeholder such as backups/<file>.dump: its folder must exist
        path = path[: path.index("<")].rsplit("/", 1)[0]
    if "*" in path:
        return any(ROOT.glob(path))
    return (ROOT / path).exists()


def test_the_readme_is_at_most_160_lines():
    lines = readme().splitlines()
    assert len(lines) <= 160, f"README.md has {len(lines)} lines; move detail into docs/"


def test_every_make_target_the_readme_names_exists():
    named = {target for code in code_of(readme()) for _, target in MAKE_TARGET.findall(code)}
    assert named, "no make target found: the parser is broken"
    assert {"demo", "test"} <= named, "the quick start names make demo and make test"
    missing = sorted(named - makefile_targets())
    assert not missing, f"README.md names make targets the Makefile lacks: {missing}"


def test_every_repository_path_the_readme_names_exists():
    text = readme()
    paths = {path for code in code_of(text) for path in REPO_PATH.findall(code)}
    paths |= {
        span.strip() for span in INLINE_CODE.findall(FENCE.sub("", text)) if ROOT_FILE.match(span.strip())
    }
    for target in LINK.findall(text):
        if not re.match(r"[a-z]+:", target) and not target.startswith("#"):
            paths.add(target.split("#", 1)[0])
    assert "docs/architecture.md" in paths, "no path found: the parser is broken"
    missing = sorted(path for path in paths if path and not exists(path))
    assert not missing, f"README.md names paths that do not exist: {missing}"


def test_every_docs_page_is_in_the_readme_docs_map():
    text = readme()
    assert DOCS_MAP_HEADING in text, f"README.md has no '{DOCS_MAP_HEADING}' section"
    section = text.split(DOCS_MAP_HEADING, 1)[1].split("\n## ", 1)[0]
    linked = [target.split("#", 1)[0] for target in LINK.findall(section)]
    assert linked and linked[0] == "docs/architecture.md", "the docs map starts with the architecture"
    unlinked = sorted(f"docs/{page.name}" for page in DOCS if f"docs/{page.name}" not in linked)
    assert not unlinked, f"docs pages missing from the README's docs map: {unlinked}"


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda page: page.relative_to(ROOT).as_posix())
def test_no_issue_numbers(page: Path):
    hits = [
        f"line {number}: {line.strip()}"
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1)
        if ISSUE_NUMBER.search(line)
    ]
    assert not hits, "describe what is, not which issue changed it:\n" + "\n".join(hits)
