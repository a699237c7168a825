"""The documentation sources: an API entry for every public name, links that
resolve, and the docs tooling's own logic. Plain file checks: `make docs`
(mkdocs build --strict) renders the site; these run without mkdocs."""

import ast
import importlib
import importlib.util
import inspect
import pathlib
import re

import pytest

import keras_reg

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

pytestmark = pytest.mark.skipif(
    not (DOCS / "api").is_dir(),
    reason="docs/ is not in this tree (an installed wheel, not a checkout or sdist)",
)


def _load(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _api_entries():
    """Every `::: name` of the API reference pages."""
    entries = set()
    for page in (DOCS / "api").glob("*.md"):
        entries |= set(re.findall(r"^::: ([\w.]+)\s*$", page.read_text(), re.M))
    return entries


def _public_names(module):
    """`__all__`, or the functions and classes the module defines."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == module.__name__
    ]


@pytest.mark.parametrize(
    "module",
    ["layers", "inference", "callbacks", "config", "testing", "models", "metrics"],
)
def test_every_public_name_has_an_api_entry(module):
    # A submodule that `import keras_reg` leaves out (`keras_reg.testing`).
    module = importlib.import_module(f"keras_reg.{module}")
    entries = _api_entries()
    missing = [
        f"{module.__name__}.{name}"
        for name in _public_names(module)
        if f"{module.__name__}.{name}" not in entries
    ]
    assert not missing, f"add a `::: name` entry to a page in docs/api/: {missing}"


def test_every_api_entry_names_a_public_object_or_a_pending_one():
    pending = _load(DOCS / "hooks.py").PENDING
    for entry in sorted(_api_entries() - pending):
        module, _, name = entry.rpartition(".")
        assert module.startswith("keras_reg."), entry
        assert name in _public_names(importlib.import_module(module)), entry


def test_pending_api_entries_are_not_in_the_package_yet():
    # docs/hooks.py leaves these entries out of the build until they exist.
    # Once merged, each must be rendered: remove it from `PENDING`.
    pending = _load(DOCS / "hooks.py").PENDING
    assert pending <= _api_entries()
    for entry in sorted(pending):
        module, _, name = entry.rpartition(".")
        assert not hasattr(getattr(keras_reg, module.split(".")[1]), name), (
            f"{entry} exists now: remove it from PENDING in docs/hooks.py"
        )


def _literal_docstring(obj):
    """The docstring literal of `obj`'s definition in its module's source."""
    module = importlib.import_module(obj.__module__)
    tree = ast.parse(pathlib.Path(module.__file__).read_text())
    for node in tree.body:
        kinds = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
        if isinstance(node, kinds) and node.name == obj.__name__:
            return ast.get_docstring(node)
    raise AssertionError(f"no definition of {obj.__name__} in {module.__file__}")


def test_every_api_entry_has_a_literal_docstring():
    pending = _load(DOCS / "hooks.py").PENDING
    missing = []
    for entry in sorted(_api_entries() - pending):
        module, _, name = entry.rpartition(".")
        obj = getattr(importlib.import_module(module), name)
        if not _literal_docstring(obj):
            missing.append(entry)
    assert not missing, f"these render without a docstring: {missing}"


def test_hook_leaves_out_only_the_pending_entries():
    hooks = _load(DOCS / "hooks.py")
    page = (
        "# Page\n\n::: keras_reg.layers.A\n    options:\n      members: true\n\n"
        "Text.\n\n::: keras_reg.layers.B\n"
    )
    kept, dropped = hooks.drop_pending(page, {"keras_reg.layers.A"})
    assert dropped == ["keras_reg.layers.A"]
    assert kept == "# Page\n\n\nText.\n\n::: keras_reg.layers.B\n"


def test_every_docs_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    assert pages and all(f": {page}" in nav for page in pages), pages


def test_relative_links_in_readme_and_contributing_resolve():
    for doc in ("README.md", "CONTRIBUTING.md"):
        if not (ROOT / doc).exists():
            continue
        text = (ROOT / doc).read_text()
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (ROOT / target).exists(), f"{doc} links to missing {target}"


def test_readme_layer_table_names_every_public_layer():
    readme = (ROOT / "README.md").read_text()
    missing = [n for n in keras_reg.layers.__all__ if f"`{n}" not in readme]
    assert not missing, f"README.md's layer table lacks {missing}"


def test_keras_docstring_layout_reads_as_google_sections():
    rewrite = _load(DOCS / "keras_docstrings.py").keras_to_google
    doc = (
        "Summary.\n\nArgs:\n    rate: float.\n\nCall arguments:\n"
        "    inputs: a tensor.\n    training: bool.\n\nExample:\n\n"
        ">>> layer = Layer(0.5)\n>>> y = layer(x)\n\nReference:\n    A paper."
    )
    assert rewrite(doc) == (
        "Summary.\n\nArgs:\n    rate: float.\n\nOther Parameters: Call arguments\n"
        "    inputs: a tensor.\n    training: bool.\n\nExamples: Example\n"
        "    >>> layer = Layer(0.5)\n    >>> y = layer(x)\n\nReference:\n    A paper."
    )
    # Google layout (indented under the title) is kept as it is.
    google = "Summary.\n\nExample:\n    >>> f()\n"
    assert rewrite(google) == "Summary.\n\nExamples: Example\n    >>> f()\n"


def test_section_titles_griffe_would_skip_are_reported():
    check = _load(DOCS / "keras_docstrings.py").check_layout
    assert check("Summary.\n\nArgs:\n    x: int.\n\nExample:\n\n>>> f()") == []
    assert [i for i, _ in check("Summary.\nArgs:\n    x: int.")] == [1]
    assert [i for i, _ in check("Summary.\n\nArgs:\n\n    x: int.")] == [2]


def _bench():
    return _load(ROOT / "benchmarks" / "run.py")


def _json(path):
    import json

    return json.loads(path.read_text())


@pytest.mark.skipif(
    not (ROOT / "benchmarks" / "results.json").exists(),
    reason="benchmarks/ is not in this tree",
)
def test_bench_tables_are_rendered_from_the_saved_rows():
    run = _bench()
    bench = ROOT / "benchmarks"
    results, gpu = _json(bench / "results.json"), _json(bench / "results_gpu.json")
    assert (bench / "RESULTS.md").read_text() == run.render_file(results, gpu)
    assert (bench / "RESULTS_gpu.md").read_text() == run.render_file(gpu, None)
    page = (DOCS / "guides" / "speed.md").read_text()
    assert run.render_page_block(results, gpu) in page
    # The page reads on GitHub: no snippet include left to render.
    assert "--8<--" not in page


def test_bench_cells_mark_met_and_missed_targets():
    run = _bench()
    assert run.targets("<= 1.05") == dict.fromkeys(run.BACKENDS, 1.05)
    assert run.targets("<= 0.4 / 1.0 / 1.2") == {
        "torch": 0.4,
        "tensorflow": 1.0,
        "jax": 1.2,
    }
    assert run.targets("(one predict per sample)") == {}

    def cell(backend, ratio, target="<= 0.4 / 1.0 / 1.2"):
        row = {"backend": backend, "ratio": ratio, "target": target}
        return run.ratio_cell(dict(row, ours_ms=2.0, ref_ms=4.0))

    assert cell("torch", 0.39) == "✓ 0.39 (2.00 / 4.00 ms)"
    assert cell("torch", 0.5) == "**✗ 0.5** (2.00 / 4.00 ms)"
    assert cell("jax", 1.15) == "✓ 1.15 (2.00 / 4.00 ms)"
    assert cell("tensorflow", 1.15) == "**✗ 1.15** (2.00 / 4.00 ms)"
    assert cell("jax", 3.0, "(no target)") == "3 (2.00 / 4.00 ms)"


def test_partial_bench_run_replaces_only_the_rows_it_measured():
    run = _bench()

    def row(backend, group, ratio):
        return {"backend": backend, "set": group, "group": group, "ratio": ratio}

    saved = {
        "environment": {"date": "old"},
        "rows": [row("jax", "recurrent", 2), row("torch", "recurrent", 3)]
        + [row("jax", "dropout", 1)],
    }
    new_rows = [row("jax", "recurrent", 9), row("jax", "mc", 4)]
    merged = run.merge(saved, new_rows, {"date": "new"})
    assert merged["environment"] == {"date": "new"}
    # The jax recurrent row replaced; its group stays first, a new one last.
    assert merged["rows"] == [
        row("torch", "recurrent", 3),
        row("jax", "recurrent", 9),
        row("jax", "dropout", 1),
        row("jax", "mc", 4),
    ]
    assert run.merge(None, [row("jax", "dropout", 5)], {})["rows"] == [
        row("jax", "dropout", 5)
    ]


def test_bench_reads_the_tables_written_before_the_saved_rows():
    run = _bench()
    old = (
        "# Benchmark results\n\n- Machine: x86_64\n- Python 3.11.7, Keras 3.15.1\n"
        "- Date: 2026-11-26\n\n## Recurrent layers vs Keras, B=64\n\n"
        "| figure | reference | target | tensorflow | torch | jax |\n"
        "|---|---|---|---|---|---|\n"
        "| train | LSTM() | <= 1.0 | n/a | **9.19** (72.40 / 7.88 ms) "
        "| **0.825** (5.62 / 6.81 ms) |\n\n## On a GPU\n\n| x | y | z | 1 | 2 | 3 |\n"
    )
    parsed = run.parse_results_md(old)
    assert parsed["environment"]["keras"] == "3.15.1"
    assert [(r["backend"], r["ratio"], r["set"]) for r in parsed["rows"]] == [
        ("torch", 9.19, "recurrent"),
        ("jax", 0.825, "recurrent"),
    ]
    assert parsed["rows"][0]["ours_ms"] == 72.40


def test_guides_use_no_syntax_that_only_the_site_renders():
    # README.md says the guides read on GitHub too: no snippet includes,
    # no autorefs cross-references, no admonitions (plain Markdown links and
    # block quotes render in both places).
    pages = [DOCS / "index.md", DOCS / "known-issues.md"]
    pages += sorted((DOCS / "guides").glob("*.md"))
    pages += sorted((DOCS / "migrating").glob("*.md"))
    site_only = {
        "snippet include": re.compile(r"^-{1,2}8<-", re.M),
        "autorefs link": re.compile(r"\]\[[\w.]+\]"),
        "admonition": re.compile(r"^\s*(!!!|\?\?\?)", re.M),
    }
    found = [
        f"{page.relative_to(DOCS)}: {kind}"
        for page in pages
        for kind, pattern in site_only.items()
        if pattern.search(page.read_text())
    ]
    assert not found, found


# The 12 recurrent classes repeat their shared arguments' docs (literal
# docstrings, STYLE.md 8). Entries of one argument read the same among the
# cells and among the sequence layers, except where the classes really
# differ: then `SHARED_ARGS_THAT_DIFFER` says by what, as a key that groups
# the classes whose entries must still agree.
_KINDS = ("LSTM", "GRU", "SimpleRNN")
_FAMILIES = ("Variational", "LayerNorm")


def _kind(name):
    return next(k for k in _KINDS if k in name)


def _family(name):
    return next(f for f in _FAMILIES if name.startswith(f))


SHARED_ARGS_THAT_DIFFER = {
    # Four gates, three gates, one block of weights.
    "per_gate_masks": _kind,
    # The LayerNorm GRUs accept only `True`.
    "reset_after": _family,
    # No fused kernel normalizes (a LayerNorm layer's `True` raises; it
    # points to its variational sibling); SimpleRNN has no cuDNN kernel and
    # Keras' SimpleRNN no such argument.
    "use_cudnn": lambda name: (
        name if name.startswith("LayerNorm") else _kind(name) == "SimpleRNN"
    ),
}


def _args_entries(docstring):
    """`{argument: its text on one line}` of a Keras-style `Args:` section."""
    section = re.search(r"^Args:\n(.*?)(?:\n\S|\Z)", docstring, re.M | re.S)
    assert section, "no Args: section"
    entries = {}
    for line in section.group(1).splitlines():
        start = re.match(r"^    (\*{0,2}\w+): ?(.*)$", line)
        if start:
            name = start.group(1)
            entries[name] = start.group(2)
        elif line.strip():
            entries[name] += " " + line.strip()
    return entries


def test_args_entries_parse_from_a_keras_docstring():
    doc = (
        "Summary.\n\nArgs:\n    units: Positive integer,\n        the size."
        "\n    seed: Optional.\n\nCall arguments:\n    inputs: a tensor."
    )
    assert _args_entries(doc) == {
        "units": "Positive integer, the size.",
        "seed": "Optional.",
    }


@pytest.mark.parametrize("group", ["cells", "sequence layers"])
def test_shared_args_of_the_recurrent_classes_read_the_same(group):
    names = [
        f"{family}{kind}{'Cell' if group == 'cells' else ''}"
        for family in _FAMILIES
        for kind in _KINDS
    ]
    texts = {}  # (argument, group key) -> {text: [classes]}
    for name in names:
        docstring = _literal_docstring(getattr(keras_reg.layers, name))
        for argument, text in _args_entries(docstring).items():
            key = SHARED_ARGS_THAT_DIFFER.get(argument, lambda name: None)(name)
            texts.setdefault((argument, key), {}).setdefault(text, []).append(name)
    differ = {
        argument: versions
        for (argument, _), versions in texts.items()
        if len(versions) > 1
    }
    assert not differ, f"the same argument documented differently: {differ}"
    # Each class documents its own arguments, every one of them.
    for name in names:
        cls = getattr(keras_reg.layers, name)
        documented = set(_args_entries(_literal_docstring(cls)))
        signature = set(inspect.signature(cls.__init__).parameters) - {"self"}
        assert signature - {"kwargs"} <= documented, (name, signature - documented)


def test_every_seed_entry_says_an_unset_seed_stays_out_of_the_config():
    # Since 0.2 a drawn seed is layer state (saved with the model), and the
    # config keeps `seed: None` so that a clone draws its own stream.
    wrong = []
    for name in keras_reg.layers.__all__:
        obj = getattr(keras_reg.layers, name)
        if not isinstance(obj, type) or "seed" not in inspect.signature(obj).parameters:
            continue
        entry = _args_entries(_literal_docstring(obj))["seed"]
        if "left out of the config" not in entry or "kept in the config" in entry:
            wrong.append(name)
    assert not wrong, f"these document the seed wrongly: {wrong}"
