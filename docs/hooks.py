"""MkDocs hook: the initializer catalogue is written from the registry at build time, so it never drifts from it."""

from __future__ import annotations

PLACEHOLDER = "<!-- the registry's table -->"


def catalogue() -> str:
    """A markdown table of every registered initializer and scheme: name, what it draws, truncation, alias, and the
    frameworks' layer defaults it reproduces."""
    import initjax

    rows = ["| name | what it draws | truncated | note | framework defaults it draws like |", "|---|---|---|---|---|"]
    for name, entry in initjax.REGISTRY.items():
        truncated = {True: "yes", False: "no", None: ""}[entry.truncated]
        note = f"alias of `{entry.alias_of}`" if entry.alias_of else ("scheme (whole network)" if entry.scheme else "")
        summary = entry.summary.replace("|", "\\|")
        defaults = "; ".join(entry.defaults)
        rows.append(f"| `{name}` | {summary} | {truncated} | {note} | {defaults} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if PLACEHOLDER in markdown:
        return markdown.replace(PLACEHOLDER, catalogue())
    return markdown
