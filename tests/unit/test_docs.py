"""The README, the docs/ pages and the examples stay true to the code.

Every page under docs/ is covered as soon as it exists: the settings it names, the
commands, the modules, the links. A reader cannot see the issue tracker, so no page may
point at it.
"""

from __future__ import annotations

import argparse
import importlib
import re
import unicodedata
from pathlib import Path

import pytest
import yaml

from offsite.cli import build_parser
from offsite.core.registry import load_registry_file
from offsite.core.settings import Settings
from offsite.rules.rules_file import load_rules

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
SETTINGS = {f"OFFSITE_{name.upper()}" for name in Settings.model_fields}
README_MAX_LINES = 220

FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.M | re.S)
SHELL = {"sh", "shell", "bash", "console"}
INLINE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")
TABLE_NAME = re.compile(r"^\| `([A-Z][A-Z0-9_]*)` \|", re.M)
OFFSITE_NAME = re.compile(r"\bOFFSITE_[A-Z0-9_]*[A-Z0-9]")
COMMAND = re.compile(r"(?<![\w./-])offsite((?:[ \t]+[a-z][a-z0-9-]*(?![\w.]))+)")
ALTERNATIVE = re.compile(r"[ \t]*\\?\|[ \t]*([a-z][a-z0-9-]*)")
PYTHON_M = re.compile(r"\bpython3? -m (offsite(?:\.\w+)+)")
TRACKER = re.compile(r"\bissues?\s*#?\d+|(?<![\w&/#])#\d+\b", re.I)


def _rel(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _code(text: str) -> list[str]:
    """Where commands are written: shell blocks, the `$ ` lines of other blocks (a
    benchmark's output under its command line), and inline code spans."""
    blocks = [
        body if info.strip() in SHELL else "\n".join(re.findall(r"^\$ (.*)$", body, re.M))
        for info, body in FENCE.findall(text)
    ]
    return blocks + INLINE.findall(FENCE.sub("", text))


def _table_names(page: Path) -> list[str]:
    return TABLE_NAME.findall(page.read_text())


def test_pages_exist_and_the_index_lists_them():
    index = (DOCS / "README.md").read_text()
    pages = {p.name for p in DOCS.glob("*.md")} - {"README.md"}
    assert {"deploy.md", "configuration.md", "http-api.md", "rules.md", "hj212.md"} <= pages
    assert {"security.md", "closed-loop.md", "ingest.md", "measured.md"} <= pages
    assert {"development.md"} <= pages
    unlisted = {p for p in pages if f"]({p})" not in index}
    assert not unlisted, f"docs/README.md does not list {unlisted}"


def test_configuration_documents_every_setting_and_no_other():
    names = _table_names(DOCS / "configuration.md")
    assert len(names) == len(set(names)), "a setting is documented twice"
    assert set(names) == SETTINGS


def _documented_extras() -> set[str]:
    """Variables that are not settings but are documented in a table of their own:
    the compose file's (deploy.md) and the test suite's and dev.py's (development.md)."""
    return set(_table_names(DOCS / "deploy.md")) | set(_table_names(DOCS / "development.md"))


def test_every_offsite_name_is_a_setting_or_a_documented_variable():
    known = SETTINGS | _documented_extras()
    for page in PAGES:
        unknown = set(OFFSITE_NAME.findall(page.read_text())) - known
        assert not unknown, f"{_rel(page)} names {sorted(unknown)}, which nothing reads"


def test_every_variable_compose_interpolates_is_documented():
    compose = (ROOT / "docker-compose.yml").read_text()
    yaml.safe_load(compose)  # still a compose file
    deploy = (DOCS / "deploy.md").read_text()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([A-Z0-9_]+)` \|.*$", deploy, re.M)}
    for name, required in re.findall(r"\$\{([A-Z0-9_]+)(:\?)?", compose):
        assert name in rows, f"docker-compose.yml reads {name}; docs/deploy.md does not say"
        if required:
            assert "refuses" in rows[name], f"{name} is required: say compose refuses without it"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _check_command(words: list[str], rest: str, where: str) -> None:
    parser = build_parser()
    path = ["offsite"]
    for word in words:
        choices = _subcommands(parser)
        if not choices:
            break  # the command's own arguments follow
        assert word in choices, f"{where}: `{' '.join([*path, word])}` is not a command"
        parser = choices[word]
        path.append(word)
        # `offsite db migrate | status`: the alternatives are commands of the same level
        after = rest.split(word, 1)[1]
        rest = after
        while alternative := ALTERNATIVE.match(after):
            name = alternative.group(1)
            assert name in choices, f"{where}: `{' '.join(path[:-1])} {name}` is not a command"
            after = after[alternative.end() :]
    if _subcommands(parser):
        return  # `offsite db`, `offsite bench …`: a group, named without options
    options = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", rest.split(" #")[0]))
    unknown = options - set(parser._option_string_actions)
    assert not unknown, f"{where}: `{' '.join(path)}` has no option {sorted(unknown)}"


def test_every_offsite_command_mentioned_exists():
    seen = 0
    for page in PAGES:
        for code in _code(page.read_text()):
            for line in code.splitlines():
                for m in COMMAND.finditer(line):
                    words = m.group(1).split()
                    _check_command(words, line[m.start(1) :], _rel(page))
                    seen += 1
    assert seen > 30  # the pattern still finds the commands


def test_every_python_m_module_imports():
    modules = {m for page in PAGES for m in PYTHON_M.findall(page.read_text())}
    assert modules  # the pattern still finds them
    for module in sorted(modules):
        importlib.import_module(module)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces → '-'."""
    text = heading.strip().lower().replace("`", "")
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in ("L", "N"))
    return kept.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def test_every_relative_link_resolves():
    for page in PAGES:
        for target in LINK.findall(FENCE.sub("", page.read_text())):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto
            file, _, anchor = target.partition("#")
            dest = (page.parent / file).resolve() if file else page
            assert dest.exists(), f"{_rel(page)} links to {target}, which does not exist"
            if anchor and dest.suffix == ".md":
                assert anchor in _anchors(dest), f"{_rel(page)}: no section #{anchor} in {file}"


def test_no_page_refers_to_the_issue_tracker():
    for page in PAGES:
        text = page.read_text()
        found = TRACKER.search(text)
        assert not found, f"{_rel(page)} refers to the tracker: {found.group(0)!r}"


def test_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"


def test_readme_gives_the_two_commands_dev_py_runs():
    readme = (ROOT / "README.md").read_text()
    dev = (ROOT / "dev.py").read_text()
    for command in ("demo", "test"):
        assert f"python3 dev.py {command}" in readme
        assert f'"{command}"' in dev


@pytest.mark.parametrize("page", ["rules.md"])
def test_rules_file_examples_load(page: str, tmp_path: Path):
    blocks = re.findall(r"^```toml\n(.*?)^```", (DOCS / page).read_text(), re.M | re.S)
    assert blocks
    for i, block in enumerate(blocks):
        path = tmp_path / f"example{i}.toml"
        path.write_text(block)
        load_rules(path)


def test_example_registry_loads():
    reg = load_registry_file(ROOT / "examples" / "registry.toml")
    assert {e.id for e in reg.enterprises} == {"E0001", "E0002"}
    assert dict(reg.points[0].limits)["a21026"] == 35.0
