"""The documentation: the generated initializer catalogue covers the registry, the committed pages' links resolve,
and the README's test command is the one CI runs (`.ci/run`)."""

import importlib.util
import re
from pathlib import Path

import initjax

REPO = Path(__file__).resolve().parents[2]


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", REPO / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_catalogue_has_a_row_for_every_registered_initializer():
    rows = _hooks().catalogue().splitlines()[2:]
    assert [re.match(r"\| `([^`]+)` \|", row).group(1) for row in rows] == list(initjax.REGISTRY)
    assert any("scheme (whole network)" in row for row in rows) and any("alias of" in row for row in rows)


def _anchor(heading: str) -> str:
    """The anchor MkDocs (and GitHub) give a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return re.sub(r"\s+", "-", text)


def test_the_readmes_links_into_the_docs_reach_a_page_and_a_heading():
    """The README is outside the site, so `mkdocs build --strict` does not check it: its links are checked here."""
    text = (REPO / "README.md").read_text()
    links = re.findall(r"\]\((docs/[^)#]+)(?:#([^)]+))?\)", text)
    assert links
    for page, anchor in links:
        target = REPO / page
        assert target.is_file(), page
        if anchor:
            anchors = {_anchor(h) for h in re.findall(r"^#+ (.+)$", target.read_text(), re.M)}
            assert anchor in anchors, (page, anchor)


def test_the_readmes_test_command_is_what_ci_runs():
    readme = (REPO / "README.md").read_text()
    command = re.search(r"Install and run the tests:\s*(?:<!--.*?-->\s*)?```bash\n(.+?)\n```", readme, re.S).group(1)
    tail = command.split("pip install -e '.[test]'", 1)[1]
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci.endswith(tail) and "mkdocs build --strict" in tail
