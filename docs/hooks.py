"""MkDocs hooks for the keras_reg site (mkdocs.yml: `hooks`).

`PENDING`: API entries for public names that the API pages already list but
that exist only on a branch not merged yet (`feat/peers`: the 0.2 layers and
schedules, see CHANGELOG). This hook leaves their `::: name` blocks out, so
the site builds on a tree without them. When the branch is merged, empty the
set: `tests/test_docs.py` fails while a name listed here exists in keras_reg,
and the build then renders every entry.
"""

import logging
import re

PENDING = frozenset(
    {
        "keras_reg.callbacks.late_dropout",
        "keras_reg.layers.ConcreteDropout",
        "keras_reg.layers.DropBlock1D",
        "keras_reg.layers.DropBlock3D",
        "keras_reg.layers.StochasticDepth",
        "keras_reg.layers.drop_path_rates",
    }
)

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
