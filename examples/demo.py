"""`make demo`: runs the three example models, prints one summary table and
writes the figures, `summary.md` and `summary.json` into `demo_output/`.

The run is deterministic on one machine (`examples._common.deterministic`:
one thread, TensorFlow's op determinism or torch's deterministic
algorithms); the docs quote the figures of `docs/figures/demo_record.json`,
a copy of such a run's `summary.json`, and `tests/test_demo_figures.py`
holds them to it.

make demo                  # TensorFlow
make demo BACKEND=jax      # or torch

    python -m examples.demo --quick   # tiny settings, for a smoke run
"""

import argparse
import importlib
import json
import os
import sys
import time

import keras

from examples import backend_check, char_lm, cnn_digits, uncertainty
from examples._common import OUTPUT_DIR, deterministic, markdown_table

HEADER = ["example", "metric", "value"]

SETTINGS = {
    "full": {
        "cnn_epochs": 40,
        "lm_epochs": char_lm.EPOCHS,
        "lm_train_chars": char_lm.TRAIN_CHARS,
        "lm_val_chars": char_lm.VAL_CHARS,
        "lm_units": char_lm.UNITS,
        "sample_length": 200,
        "mc_epochs": 40,
    },
    "quick": {
        "cnn_epochs": 1,
        "lm_epochs": 2,
        "lm_train_chars": 3_000,
        "lm_val_chars": 1_000,
        "lm_units": 32,
        "sample_length": 10,
        "mc_epochs": 1,
    },
}


def run(settings, output_dir=OUTPUT_DIR, progress=True, samples=30):
    """Runs the three examples; `main` makes the process deterministic
    first (`examples._common.deterministic`), for the whole process."""
    timings, figures = {}, []
    start = time.perf_counter()
    cnn = cnn_digits.run(settings["cnn_epochs"], progress=progress)
    figures.append(cnn_digits.plot(cnn, output_dir))
    timings["cnn_digits"] = time.perf_counter() - start

    start = time.perf_counter()
    lm = char_lm.run(
        settings["lm_epochs"],
        settings["lm_train_chars"],
        settings["lm_val_chars"],
        settings["lm_units"],
        progress=progress,
        sample_length=settings["sample_length"],
    )
    figures.append(char_lm.plot(lm, output_dir))
    timings["char_lm"] = time.perf_counter() - start

    start = time.perf_counter()
    mc = uncertainty.run(settings["mc_epochs"], samples=samples, progress=progress)
    figures.append(uncertainty.plot(mc, output_dir))
    timings["uncertainty"] = time.perf_counter() - start

    rows = []
    base, reg = cnn
    rows.append(
        [
            "cnn_digits",
            "train-val accuracy gap, baseline -> regularized",
            f"{base['acc_gap']:.3f} -> {reg['acc_gap']:.3f}",
        ]
    )
    rows.append(
        [
            "cnn_digits",
            "val accuracy, baseline -> regularized",
            f"{base['val_acc']:.3f} -> {reg['val_acc']:.3f}",
        ]
    )
    for r in lm["results"]:
        rows.append(
            [
                "char_lm",
                f"{r['model']} best val bits/char (epoch)",
                f"{r['best_val_bpc']:.3f} ({r['best_epoch']}/{r['epochs']})",
            ]
        )
    for shift in uncertainty.SHIFTS:
        for method in uncertainty.METHODS:
            value = mc["aurocs"][method][shift]
            rows.append(
                ["uncertainty", f"AUROC clean vs {shift}, {method}", f"{value:.3f}"]
            )
    summary = _summary(cnn, lm, mc, rows, timings, figures)
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, "summary.md")
    with open(path, "w") as f:
        f.write(summary)
    record = _record(settings, samples, rows, lm)
    with open(os.path.join(output_dir, "summary.json"), "w") as f:
        json.dump(record, f, indent=1, ensure_ascii=False)
        f.write("\n")
    return {
        "rows": rows,
        "lm_verdicts": char_lm.verdicts(lm),
        "summary": path,
        "figures": figures,
        "timings": timings,
    }


def _record(settings, samples, rows, lm):
    """What `summary.json` holds: the settings and versions of the run, and
    each metric's printed value, by "example: metric"."""
    backend = keras.backend.backend()
    backend_version = importlib.import_module(backend).__version__
    return {
        "backend": backend,
        "versions": {"keras": keras.__version__, backend: backend_version},
        "settings": dict(settings, mc_samples=samples),
        "metrics": {f"{example}: {metric}": value for example, metric, value in rows},
        "char_lm_val_bpc": {
            r["model"]: [
                round(char_lm.bits_per_char(v), 4) for v in r["history"]["val_loss"]
            ]
            for r in lm["results"]
        },
    }


def _summary(cnn, lm, mc, rows, timings, figures):
    backend = keras.backend.backend()
    parts = [
        f"# keras_reg demo ({backend})",
        "",
        markdown_table(HEADER, rows),
        "",
        "## cnn_digits",
        "",
        cnn_digits.format_table(cnn),
        "",
        "## char_lm",
        "",
        char_lm.format_table(lm),
        "",
        *[f"- {line}" for line in char_lm.verdicts(lm)],
        "",
        f"Sample from {lm['best']} (the lowest last-epoch validation bits/char):",
        "",
        "```",
        lm["sample"],
        "```",
        "",
        "## uncertainty",
        "",
        uncertainty.format_table(mc),
        "",
        "## figures",
        "",
        *[f"![{os.path.basename(f)}]({os.path.basename(f)})" for f in figures],
        "",
        "Time: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()),
        "",
    ]
    return "\n".join(parts)


def short_run():
    """A few seconds of the demo's uncertainty example (3 epochs, 5 samples,
    2 ensemble members), deterministic like the demo:
    `tests/test_demo_figures.py` runs it in a fresh process and compares its
    figures with `docs/figures/demo_short_record.json`."""
    deterministic()
    mc = uncertainty.run(3, samples=5, progress=False, ensemble=2)
    figures = {
        f"AUROC clean vs {shift}, {method}": round(value, 4)
        for method, by_shift in mc["aurocs"].items()
        for shift, value in by_shift.items()
    }
    for method, value in mc["results"][0]["accuracy"].items():
        figures[f"accuracy on clean digits, {method}"] = round(value, 4)
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--short", action="store_true", help="print short_run()'s figures as JSON"
    )
    parser.add_argument("--output-dir", default=OUTPUT_DIR)
    args = parser.parse_args(argv)
    if args.short:
        print(json.dumps(short_run(), ensure_ascii=False))
        return None
    deterministic()
    settings = SETTINGS["quick" if args.quick else "full"]
    outcome = run(settings, args.output_dir)
    # The backend-switch check of the character model, into summary.md.
    backend_check.append_to_summary(outcome["summary"], settings["lm_units"])
    print(f"\n=== keras_reg demo, backend {keras.backend.backend()} ===")
    print(markdown_table(HEADER, outcome["rows"]))
    print("", *outcome["lm_verdicts"], sep="\n")
    written = [outcome["summary"], os.path.join(args.output_dir, "summary.json")]
    print("\nwritten:", *written, *outcome["figures"], sep="\n  ")
    return outcome


if __name__ == "__main__":
    main(sys.argv[1:])
