"""A griffe extension: Keras-format docstrings read as Google style.

keras_reg's docstrings follow Keras' own layout (`keras/src/layers/rnn/lstm.py`),
which griffe's Google parser reads almost, but not quite, as intended:

- `Example:` (singular) is not a Google section, and Keras puts a blank line
  after it and the `>>>` lines at the title's indentation. Both are accepted
  here: the block is indented under an `Examples:` section, so the `>>>`
  lines render as code instead of Markdown quotes.
- `Call arguments:` becomes a parameter list titled "Call arguments" (an
  "Other Parameters" section; its names are not checked against the
  constructor's signature).

`Input shape:`, `Output shape:` and `Reference:` need nothing: griffe renders
an unknown title followed by an indented block as a titled box.

A section title written where griffe would not read it as one (no blank line
above, or a blank line between `Args:` and its first entry) would render as
plain text without a warning; `check_layout` turns that into a warning, which
fails `mkdocs build --strict`.

mkdocs.yml loads this file through mkdocstrings' `extensions` option. The
rewrite (`keras_to_google`) and the check (`check_layout`) are plain
functions of the docstring text.
"""

import re

# A section title alone on its line, e.g. "Args:" or "Call arguments:".
_TITLE = re.compile(r"^[A-Z][\w ]*:\s*$")
_EXAMPLE = re.compile(r"^Examples?:\s*$")


def keras_to_google(text):
    """Rewrites a cleaned (dedented) Keras-format docstring for griffe."""
    lines = text.split("\n")
    out = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip() == "Call arguments:":
            out.append("Other Parameters: Call arguments")
            i += 1
            continue
        if _EXAMPLE.match(line):
            title = line.strip()[:-1]
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            if j < len(lines) and not lines[j].startswith(" "):
                # Keras layout: the example sits at the title's indentation.
                # Take lines up to the next section title (or the end).
                block = []
                while j < len(lines) and not _is_title(lines, j):
                    block.append(lines[j])
                    j += 1
                while block and not block[-1].strip():
                    block.pop()
                out.append(f"Examples: {title}")
                out.extend("    " + b if b.strip() else "" for b in block)
                out.append("")
                i = j
                continue
            out.append(f"Examples: {title}")
            i += 1
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def _is_title(lines, j):
    """Whether `lines[j]` opens a section: a title line followed by an
    indented line (blank lines between are allowed, as Keras writes them)."""
    if not _TITLE.match(lines[j]):
        return False
    k = j + 1
    while k < len(lines) and not lines[k].strip():
        k += 1
    return k < len(lines) and lines[k].startswith((" ", ">>>"))


# Titles that must open a section. Written with a blank line above and the
# entries right below (`Example:` may have a blank line below, Keras-style),
# they parse; otherwise griffe renders them as plain text without a word,
# so `check_layout` says so.
SECTION_TITLES = (
    "Args",
    "Arguments",
    "Call arguments",
    "Input shape",
    "Output shape",
    "Returns",
    "Raises",
    "Example",
    "Examples",
    "Reference",
    "References",
)


def check_layout(text):
    """`(line index, message)` for each section title of a cleaned
    docstring that griffe would not read as a section."""
    lines = text.split("\n")
    problems = []
    for i, line in enumerate(lines):
        title = line.rstrip()
        if not title.endswith(":") or title[:-1] not in SECTION_TITLES:
            continue
        if i > 0 and lines[i - 1].strip():
            problems.append((i, f"'{title}' needs a blank line above it"))
        below = lines[i + 1] if i + 1 < len(lines) else ""
        if not below.strip() and not title.startswith("Example"):
            problems.append((i, f"'{title}' must be followed by its first entry"))
    return problems


try:
    import griffe
except ImportError:  # the functions above are usable without griffe
    griffe = None

if griffe is not None:

    class KerasDocstrings(griffe.Extension):
        """Checks each docstring's section layout and rewrites it with
        `keras_to_google` when it is loaded."""

        def on_instance(self, *, obj, **kwargs):
            docstring = obj.docstring
            if docstring is None:
                return
            for offset, message in check_layout(docstring.value):
                griffe.docstring_warning(docstring, offset, message)
            docstring.value = keras_to_google(docstring.value)
