"""`make demo`: runs the example models side by side, prints one summary
table and writes the figures, `summary.md` and `summary.json` into
`demo_output/`.

The demo is a list of steps (`STEPS`). They run in as many worker
processes as there are CPU cores (`--jobs`), each on one thread and
deterministic (`examples._common.deterministic`: TensorFlow's op
determinism or torch's deterministic algorithms); a worker imports the
backend once and runs steps one after another, each from a clean Keras
state (`keras.backend.clear_session`). Each step seeds its own models, so
its figures do not depend on which steps ran before it or beside it:
`summary.json` is the same with `--jobs 1` and with `--jobs 2`. The docs
quote the figures of `docs/figures/demo_record.json`, a copy of such a
run's `summary.json`, and `tests/test_demo_figures.py` holds them to it.

make demo                  # TensorFlow
make demo BACKEND=jax      # or torch

    python -m examples.demo --quick    # tiny settings, for a smoke run
    python -m examples.demo --jobs 1   # one step at a time
"""

import argparse
import importlib
import json
import math
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import keras

from examples import (
    active_learning,
    backend_check,
    char_lm,
    cnn_digits,
    regularize_application,
    uncertainty,
)
from examples._common import OUTPUT_DIR, deterministic, markdown_table

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The settings of `short_run` (the uncertainty example, briefly).
SHORT = {"epochs": 3, "samples": 5, "ensemble": 2}
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
        "mc_ensemble": uncertainty.ENSEMBLE,
        "app_epochs": 8,
        "app_samples": 10,
        "app_train_size": 500,
        "app_mc_rows": 300,
        "al_seeds": list(active_learning.SHORT["seeds"]),
        "al_methods": list(active_learning.SHORT["methods"]),
        "al_max_labels": active_learning.SHORT["max_labels"],
        "al_steps": active_learning.SHORT["steps"],
    },
    # The uncertainty step at `short_run`'s settings (with `samples=5`):
    # the test of the quick demo checks its figures against
    # `docs/figures/demo_short_record.json` too.
    "quick": {
        "cnn_epochs": 1,
        "lm_epochs": 2,
        "lm_train_chars": 3_000,
        "lm_val_chars": 1_000,
        "lm_units": 32,
        "sample_length": 10,
        "mc_epochs": SHORT["epochs"],
        "mc_ensemble": SHORT["ensemble"],
        "app_epochs": 1,
        "app_samples": 2,
        "app_train_size": 100,
        "app_mc_rows": 20,
        "al_seeds": [0],
        "al_methods": ["bald", "random"],
        "al_max_labels": 30,
        "al_steps": 10,
    },
}

# Thread counts for every step's process, set before it imports a backend:
# one thread each, so that N steps side by side use N cores and a busy
# machine slows each step by its share of the cores, not by threads
# fighting over them. (`deterministic` sets TensorFlow's and torch's counts
# too; XLA's CPU client reads only the environment.)
ONE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}


# --- The steps ------------------------------------------------------------------
#
# A step is `(name, module, function)`: `module.function(settings,
# output_dir, progress)` runs in a worker process (one thread,
# deterministic, from a clean Keras state; `settings` is a dict of
# `SETTINGS` plus `mc_samples`). It writes its figures into `output_dir`
# and returns a JSON-serializable dict:
#
#   "rows":     [[example, metric, value], ...]: its rows of the summary
#               table, and of summary.json's "metrics";
#   "markdown": its section of summary.md, heading included;
#   "figures":  the paths of the figures it wrote;
#   "lines":    (optional) lines printed after the summary table;
#   "record":   (optional) entries added to summary.json.
#
# A new example plugs in by adding its step to `STEPS` (and its CPU
# seconds to `CPU_SECONDS`). An example whose models are independent can
# run as several steps, one per model, that `JOINED` puts back together:
# the character models train side by side this way.


def char_lm_model_step(kind):
    """The step that trains one of the character models (`char_lm.KINDS`):
    the three train side by side, each seeded on its own, and
    `combine_char_lm` makes their section."""

    def step(settings, output_dir, progress):
        del output_dir
        lm = char_lm.run(
            settings["lm_epochs"],
            settings["lm_train_chars"],
            settings["lm_val_chars"],
            settings["lm_units"],
            kinds=(kind,),
            progress=progress,
            sample_length=settings["sample_length"],
        )
        (result,) = lm["results"]
        return {
            "rows": [],
            "markdown": "",
            "figures": [],
            "char_lm": {"result": result, "sample": lm["sample"]},
            "settings": lm["settings"],
        }

    return step


def combine_char_lm(parts, output_dir):
    """The character models' section, rows, figure and curves, from the
    results of their steps (in `char_lm.KINDS` order): the sample is that of
    the model with the lowest last-epoch validation bits/char, as
    `char_lm.run` picks it."""
    results = [part["char_lm"]["result"] for part in parts]
    best = min(range(len(parts)), key=lambda i: results[i]["last_val_bpc"])
    lm = {
        "results": results,
        "best": results[best]["model"],
        "sample": parts[best]["char_lm"]["sample"],
        "settings": parts[0]["settings"],
    }
    figure = char_lm.plot(lm, output_dir)
    rows = [
        [
            "char_lm",
            f"{r['model']} best val bits/char (epoch)",
            f"{r['best_val_bpc']:.3f} ({r['best_epoch']}/{r['epochs']})",
        ]
        for r in results
    ]
    verdicts = char_lm.verdicts(lm)
    markdown = [
        "## char_lm",
        "",
        char_lm.format_table(lm),
        "",
        *[f"- {line}" for line in verdicts],
        "",
        f"Sample from {lm['best']} (the lowest last-epoch validation bits/char):",
        "",
        "```",
        lm["sample"],
        "```",
    ]
    val_bpc = {
        r["model"]: [
            round(char_lm.bits_per_char(v), 4) for v in r["history"]["val_loss"]
        ]
        for r in results
    }
    return {
        "rows": rows,
        "markdown": "\n".join(markdown),
        "figures": [figure],
        "lines": verdicts,
        "record": {"char_lm_val_bpc": val_bpc},
    }


def uncertainty_step(settings, output_dir, progress):
    mc = uncertainty.run(
        settings["mc_epochs"],
        samples=settings["mc_samples"],
        progress=progress,
        ensemble=settings["mc_ensemble"],
    )
    rows = [
        [
            "uncertainty",
            f"AUROC clean vs {shift}, {method}",
            f"{mc['aurocs'][method][shift]:.3f}",
        ]
        for shift in uncertainty.SHIFTS
        for method in uncertainty.SCORES
    ]
    rows += [
        [
            "uncertainty",
            f"ECE on clean digits 0-7 ({uncertainty.BINS} bins), {method}",
            f"{mc['calibration'][method]['ece']:.3f}",
        ]
        for method in uncertainty.CALIBRATED
    ]
    return {
        "rows": rows,
        "markdown": "## uncertainty\n\n" + uncertainty.format_table(mc),
        "figures": [
            uncertainty.plot(mc, output_dir),
            uncertainty.plot_reliability(mc, output_dir),
        ],
        "record": {"uncertainty_figures": uncertainty_figures(mc)},
    }


def uncertainty_figures(mc):
    """The uncertainty example's AUROCs and clean accuracies, rounded to 4
    decimals (the form of `docs/figures/demo_short_record.json`)."""
    figures = {
        f"AUROC clean vs {shift}, {method}": round(value, 4)
        for method, by_shift in mc["aurocs"].items()
        for shift, value in by_shift.items()
    }
    for method, value in mc["results"][0]["accuracy"].items():
        figures[f"accuracy on clean digits, {method}"] = round(value, 4)
    return figures


def application_step(settings, output_dir, progress):
    """`examples.regularize_application`: a random-weight MobileNetV3Small,
    `regularize`d, fine-tuned on the digits and scored with `mc_predict`,
    and what `portable` replaces in it (the layer the checker names). The
    backend check of the application itself (two checks, six subprocesses,
    minutes on JAX) is not run here: `make demo`'s backend check runs on
    the character model, and `python -m examples.regularize_application`
    runs the application's."""
    del output_dir
    app = regularize_application.run(
        epochs=settings["app_epochs"],
        samples=settings["app_samples"],
        train_size=settings["app_train_size"],
        check_backends=(),
        verbose=1 if progress else 0,
        mc_rows=settings["app_mc_rows"],
    )
    name = f"regularize_application ({app['application']})"
    counts = regularize_application.counts_text
    rows = [
        [name, "layers inserted by regularize", counts(app["inserted"])],
        [name, "layers replaced by regularize", counts(app["replaced"])],
        [
            name,
            "inference unchanged by regularize",
            "yes" if app["inference_unchanged"] else "no",
        ],
        [
            name,
            f"val accuracy after {app['epochs']} epochs, MC dropout mean "
            f"({app['samples']} samples)",
            f"{app['val_accuracy']:.3f}, {app['mc_val_accuracy']:.3f}",
        ],
        [
            name,
            "layers portable replaces (the checker names them)",
            counts(app["portable_replaced"]),
        ],
    ]
    return {
        "rows": rows,
        "markdown": "## regularize_application\n\n"
        + regularize_application.format_table(app),
        "figures": [],
    }


def active_learning_step(settings, output_dir, progress):
    """`examples.active_learning`, the demo's short run: one seed, BALD
    against random (`make active-learning` runs the full sweep)."""
    outcome = active_learning.run(
        seeds=tuple(settings["al_seeds"]),
        methods=tuple(settings["al_methods"]),
        max_labels=settings["al_max_labels"],
        progress=progress,
        steps=settings["al_steps"],
    )
    table = active_learning.summary(outcome)
    rows = []
    for level in active_learning.LEVELS:
        for method in outcome["methods"]:
            (labels,) = table[method][level]  # one seed
            rows.append(
                [
                    "active_learning",
                    f"labels to {level:.0%} test error, {method}",
                    str(labels) if labels is not None else f"> {outcome['max_labels']}",
                ]
            )
    figure = active_learning.plot(outcome, output_dir, name="active_learning_demo.png")
    curves = {
        r["method"]: {"labels": r["labels"], "errors": r["errors"]}
        for r in outcome["runs"]
    }
    return {
        "rows": rows,
        "markdown": "## active_learning\n\n" + active_learning.format_table(outcome),
        "figures": [figure],
        "record": {"active_learning_curves": curves},
    }


def cnn_digits_step(settings, output_dir, progress):
    cnn = cnn_digits.run(settings["cnn_epochs"], progress=progress)
    base, reg = cnn
    rows = [
        [
            "cnn_digits",
            "train-val accuracy gap, baseline -> regularized",
            f"{base['acc_gap']:.3f} -> {reg['acc_gap']:.3f}",
        ],
        [
            "cnn_digits",
            "val accuracy, baseline -> regularized",
            f"{base['val_acc']:.3f} -> {reg['val_acc']:.3f}",
        ],
    ]
    return {
        "rows": rows,
        "markdown": "## cnn_digits\n\n" + cnn_digits.format_table(cnn),
        "figures": [cnn_digits.plot(cnn, output_dir)],
    }


def backend_check_step(settings, output_dir, progress):
    """`keras_reg.testing.compare_backends` on the character model, every
    installed backend (`examples.backend_check`)."""
    del output_dir, progress
    report, seconds = backend_check.run(units=settings["lm_units"])
    return {
        "rows": [],
        "markdown": backend_check.section(report, seconds).rstrip("\n"),
        "figures": [],
        "lines": [f"backend check ({keras.backend.backend()} runs the demo):"]
        + str(report).splitlines(),
    }


char_lstm_step = char_lm_model_step("lstm")
char_variational_step = char_lm_model_step("variational")
char_layer_norm_step = char_lm_model_step("layer_norm")

# The steps, in the order of the summary table and summary.md.
STEPS = [
    ("cnn_digits", "examples.demo", "cnn_digits_step"),
    ("char_lm: lstm", "examples.demo", "char_lstm_step"),
    ("char_lm: variational", "examples.demo", "char_variational_step"),
    ("char_lm: layer_norm", "examples.demo", "char_layer_norm_step"),
    ("uncertainty", "examples.demo", "uncertainty_step"),
    ("regularize_application", "examples.demo", "application_step"),
    ("active_learning", "examples.demo", "active_learning_step"),
    # Further examples plug in here: ("name", "examples.module", "function").
]
# Steps whose results one function joins into one part of the summary:
# {part: (steps, function(their results, output_dir) -> a step's result)}.
JOINED = {
    "char_lm": (
        ("char_lm: lstm", "char_lm: variational", "char_lm: layer_norm"),
        combine_char_lm,
    ),
}
# `make demo` ends with the backend check of the character model; `run`
# without it runs the examples only.
CHECK_STEP = ("backend check", "examples.demo", "backend_check_step")
# Each step's CPU seconds on TensorFlow, full settings (imports included:
# measured on 2026-12-06, when each step had a process of its own, on 2
# cores shared with other work; the backend check's include its
# subprocesses): the steps start longest first, so that the last to end is
# a short one. A step not listed starts first.
CPU_SECONDS = {
    "regularize_application": 57,
    "uncertainty": 49,
    "char_lm: layer_norm": 48,
    "cnn_digits": 41,
    "char_lm: variational": 35,
    "backend check": 34,
    "char_lm: lstm": 31,
    "active_learning": 28,
}


# --- Running the steps ----------------------------------------------------------


def default_jobs():
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _run_step(module, function, settings, output_dir, progress, result_path):
    """In a worker: runs one step from a clean Keras state and writes its
    result, with its CPU and wall seconds, to `result_path`."""
    # What a fresh process would start from: no models, layer names from
    # their first uid, Keras' global seed state unset (each step seeds
    # its own models).
    keras.backend.clear_session()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() + children.ru_utime + children.ru_stime
    start = time.perf_counter()
    part = getattr(importlib.import_module(module), function)(
        settings, output_dir, progress
    )
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    part["cpu_s"] = time.process_time() + children.ru_utime + children.ru_stime - cpu
    part["seconds"] = time.perf_counter() - start
    with open(result_path, "w") as f:
        json.dump(part, f, ensure_ascii=False)


def _serve():
    """`python -m examples.demo --worker`: a worker process. Reads one step
    per line on stdin (the arguments of `_run_step` and `log_path`), runs
    it with its output (Python's and the backend's) going to its log, and
    answers on stdout with one line, `ok` or `failed`, when it ends."""
    deterministic()
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    for line in sys.stdin:
        args = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        with open(args.pop("log_path"), "w") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                _run_step(**args)
                status = "ok"
            except BaseException:  # reported to the parent, with the log
                traceback.print_exc()
                status = "failed"
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                for fd in saved:
                    os.close(fd)
        answers.write(status + "\n")


class _Worker:
    """A worker process (`_serve`) and the steps it has run. It imports the
    backend once; each step it runs starts from `keras.backend.clear_session`
    and seeds its own models, so its figures are those of a fresh process."""

    def __init__(self, folder):
        env = dict(os.environ, KERAS_BACKEND=keras.backend.backend(), **ONE_THREAD)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self.log_path = os.path.join(folder, f"worker_{id(self)}.log")
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "examples.demo", "--worker"],
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )

    def run(self, step, settings, output_dir, progress, folder):
        """Runs `step` here; returns its result (`seconds`: its wall time,
        the worker's imports not included)."""
        name, module, function = step
        slug = "".join(c if c.isalnum() else "_" for c in name)
        result_path = os.path.join(folder, f"{slug}.json")
        log_path = os.path.join(folder, f"{slug}.log")
        args = {
            "module": module,
            "function": function,
            "settings": settings,
            "output_dir": os.path.abspath(output_dir),
            "progress": progress,
            "result_path": result_path,
            "log_path": log_path,
        }
        self.proc.stdin.write(json.dumps(args) + "\n")
        self.proc.stdin.flush()
        status = self.proc.stdout.readline().strip()
        if status != "ok":
            tail = ""
            for path in (log_path, self.log_path):
                if os.path.exists(path):
                    with open(path) as log:
                        tail += log.read()[-4000:]
            raise RuntimeError(
                f"demo step {name!r} failed "
                f"({'it raised' if status == 'failed' else 'its worker exited'}); "
                f"its output ends with:\n{tail}"
            )
        with open(result_path) as f:
            return json.load(f)

    def close(self, timeout=60):
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


def run_steps(steps, settings, output_dir, progress=True, jobs=None):
    """Runs `steps` in `jobs` worker processes (default: one per CPU core),
    each on one thread, longest first; prints a line per step as it ends.
    Returns `{name: result}`."""
    jobs = max(1, min(jobs or default_jobs(), len(steps)))
    os.makedirs(output_dir, exist_ok=True)
    longest_first = sorted(steps, key=lambda s: -CPU_SECONDS.get(s[0], math.inf))
    queue = list(longest_first)
    lock = threading.Lock()
    parts, failures = {}, []

    def serve(worker, folder):
        while True:
            with lock:
                if failures or not queue:
                    return
                step = queue.pop(0)
            try:
                part = worker.run(step, settings, output_dir, progress, folder)
            except BaseException as error:
                with lock:
                    failures.append(error)
                return
            with lock:
                parts[step[0]] = part
                if progress:
                    print(
                        f"  {step[0]:<22} {part['seconds']:6.1f} s "
                        f"(CPU {part['cpu_s']:.1f} s)",
                        flush=True,
                    )

    with tempfile.TemporaryDirectory(prefix="keras_reg_demo_") as folder:
        if progress:
            names = ", ".join(step[0] for step in steps)
            print(
                f"demo: {len(steps)} steps ({names}), in {jobs} processes, "
                "one thread each",
                flush=True,
            )
        workers = [_Worker(folder) for _ in range(jobs)]
        try:
            threads = [
                threading.Thread(target=serve, args=(worker, folder))
                for worker in workers
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            for worker in workers:
                worker.close()
    if failures:
        raise failures[0]
    return {step[0]: parts[step[0]] for step in steps}


def run(
    settings,
    output_dir=OUTPUT_DIR,
    progress=True,
    samples=30,
    jobs=None,
    steps=None,
):
    """Runs the demo's steps side by side (`run_steps`) and writes
    `summary.md` and `summary.json` into `output_dir`."""
    steps = STEPS if steps is None else steps
    settings = dict(settings, mc_samples=samples)
    start = time.perf_counter()
    done = run_steps(steps, settings, output_dir, progress, jobs)
    timings = {name: part["seconds"] for name, part in done.items()}
    cpu = {name: part["cpu_s"] for name, part in done.items()}
    parts = _join(done, output_dir)
    wall = time.perf_counter() - start
    rows = [row for part in parts.values() for row in part["rows"]]
    figures = [
        os.path.join(output_dir, os.path.basename(f))
        for part in parts.values()
        for f in part["figures"]
    ]
    summary = _summary(parts, rows, figures, timings, wall)
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, "summary.md")
    with open(path, "w") as f:
        f.write(summary)
    record = _record(settings, rows, parts)
    with open(os.path.join(output_dir, "summary.json"), "w") as f:
        json.dump(record, f, indent=1, ensure_ascii=False)
        f.write("\n")
    return {
        "rows": rows,
        "lm_verdicts": parts.get("char_lm", {}).get("lines", []),
        "lines": {name: part.get("lines", []) for name, part in parts.items()},
        "summary": path,
        "figures": figures,
        "timings": timings,
        "cpu": cpu,
        "wall": wall,
    }


def _join(done, output_dir):
    """`{part: result}` in the order of the steps, the results of `JOINED`
    steps joined into their part."""
    parts = {}
    for name, part in done.items():
        joined = next((j for j, (names, _) in JOINED.items() if name in names), None)
        if joined is None:
            parts[name] = part
        elif joined not in parts:
            names, function = JOINED[joined]
            parts[joined] = function([done[n] for n in names if n in done], output_dir)
    return parts


def _record(settings, rows, parts):
    """What `summary.json` holds: the settings and versions of the run, each
    metric's printed value by "example: metric", and the steps' own
    entries (the character models' validation curves)."""
    backend = keras.backend.backend()
    backend_version = importlib.import_module(backend).__version__
    record = {
        "backend": backend,
        "versions": {"keras": keras.__version__, backend: backend_version},
        "settings": settings,
        "metrics": {f"{example}: {metric}": value for example, metric, value in rows},
    }
    for part in parts.values():
        record.update(part.get("record", {}))
    return record


def _summary(parts, rows, figures, timings, wall):
    backend = keras.backend.backend()
    lines = [f"# keras_reg demo ({backend})", "", markdown_table(HEADER, rows), ""]
    for part in parts.values():
        lines += [part["markdown"], ""]
    lines += [
        "## figures",
        "",
        *[f"![{os.path.basename(f)}]({os.path.basename(f)})" for f in figures],
        "",
        "Time, each step in a worker process (side by side): "
        + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
        + f"; {wall:.0f} s in all.",
        "",
    ]
    return "\n".join(lines)


def short_run():
    """A few seconds of the demo's uncertainty example (`SHORT`: 3 epochs,
    5 samples, 2 ensemble members), deterministic like the demo; the quick
    demo runs the same (`SETTINGS["quick"]`, `samples=5`), and
    `tests/test_demo_figures.py` compares its figures with
    `docs/figures/demo_short_record.json` (`--short` prints them for a
    backend's entry)."""
    deterministic()
    mc = uncertainty.run(
        SHORT["epochs"],
        samples=SHORT["samples"],
        progress=False,
        ensemble=SHORT["ensemble"],
    )
    return uncertainty_figures(mc)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--short", action="store_true", help="print short_run()'s figures as JSON"
    )
    parser.add_argument("--output-dir", default=OUTPUT_DIR)
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="steps run at a time (default: one per CPU core)",
    )
    parser.add_argument("--no-check", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:  # a worker process of `run_steps`
        _serve()
        return None
    if args.short:
        print(json.dumps(short_run(), ensure_ascii=False))
        return None
    settings = SETTINGS["quick" if args.quick else "full"]
    steps = STEPS if args.no_check else [*STEPS, CHECK_STEP]
    outcome = run(settings, args.output_dir, jobs=args.jobs, steps=steps)
    print(f"\n=== keras_reg demo, backend {keras.backend.backend()} ===")
    print(markdown_table(HEADER, outcome["rows"]))
    for lines in outcome["lines"].values():
        if lines:
            print("", *lines, sep="\n")
    written = [outcome["summary"], os.path.join(args.output_dir, "summary.json")]
    print("\nwritten:", *written, *outcome["figures"], sep="\n  ")
    times = ", ".join(f"{k} {v:.0f} s" for k, v in outcome["timings"].items())
    print(f"\ntime: {outcome['wall']:.0f} s ({times})")
    return outcome


if __name__ == "__main__":
    main(sys.argv[1:])
