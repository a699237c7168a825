"""One quick demo run per pytest process, shared by the tests that need
one: `tests/test_examples.py` checks its outputs and
`tests/test_demo_figures.py` its uncertainty figures against
`docs/figures/demo_short_record.json` (the quick settings run the
uncertainty example as `examples.demo.short_run` does)."""

_RUNS = {}


def quick_demo(tmp_path_factory):
    """`(output_dir, outcome)` of `examples.demo.run` at the quick settings
    (`samples` as `short_run`'s), run on the first call only."""
    if "quick" not in _RUNS:
        from examples import demo

        folder = tmp_path_factory.mktemp("quick_demo")
        outcome = demo.run(
            demo.SETTINGS["quick"],
            str(folder),
            progress=False,
            samples=demo.SHORT["samples"],
        )
        _RUNS["quick"] = (folder, outcome)
    return _RUNS["quick"]
