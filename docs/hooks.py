"""MkDocs hooks for the keras_reg site (mkdocs.yml: `hooks`).

`PENDING`: API entries that the API pages list ahead of the code (a public
name on its way in). This hook leaves their `::: name` blocks out, so the
site builds without them; `tests/test_docs.py` fails while a name listed
here exists in keras_reg, so the list is emptied when the name lands.
"""

import logging
import re

PENDING = frozenset()

log = logging.getLogger("mkdocs.hooks.keras_reg")

# `::: name` and the indented option lines under it.
_ENTRY = re.compile(
    r"^::: (?P<name>[\w.]+)[ \t]*(?:\n|\Z)(?:[ \t]+\S.*(?:\n|\Z))*", re.MULTILINE
)


def drop_pending(markdown, pending=PENDING):
    """`markdown` without the `::: name` blocks of the `pending` names, and
    the names it left out."""
    dropped = []

    def replace(match):
        if match.group("name") in pending:
            dropped.append(match.group("name"))
            return ""
        return match.group(0)

    return _ENTRY.sub(replace, markdown), dropped


def on_page_markdown(markdown, page, **kwargs):
    markdown, dropped = drop_pending(markdown)
    if dropped:
        log.info(
            "%s: left out API entries pending a merge: %s",
            page.file.src_path,
            ", ".join(dropped),
        )
    return markdown
