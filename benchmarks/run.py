"""`make bench`: ratios of keras_reg layers against Keras built-ins.

Every figure is `time(ours) / time(reference)`, both timed in the same
process on the same backend, after warm-up, as the median of interleaved
repeats (A, B, A, B, ...), so slow drift of a noisy machine hits both.
Each backend runs in its own subprocess. The rows are saved in
`benchmarks/results.json`; a run of some figure groups or backends replaces
only those rows there. `benchmarks/RESULTS.md` and the tables of the Speed
page (`docs/guides/speed.md`) are rendered from the saved rows.

    python benchmarks/run.py                         # all backends
    python benchmarks/run.py --backends jax          # one; the others stay
    python benchmarks/run.py --figures recurrent     # one figure group
    python benchmarks/run.py --render-only           # re-render, run nothing
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BACKENDS = ("tensorflow", "torch", "jax")


def interleaved(fn_a, fn_b, repeats=30, warmup=5):
    """Median seconds of `fn_a` and `fn_b`, timed alternately."""
    for _ in range(warmup):
        fn_a()
        fn_b()
    times_a, times_b = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        fn_a()
        times_a.append(time.perf_counter() - start)
        start = time.perf_counter()
        fn_b()
        times_b.append(time.perf_counter() - start)
    times_a.sort()
    times_b.sort()
    return times_a[len(times_a) // 2], times_b[len(times_b) // 2]


def worker(figures):
    """Runs in a subprocess with KERAS_BACKEND set; prints JSON rows."""
    sys.path.insert(0, ROOT)
    sys.path.insert(0, HERE)
    import keras
    from suite import FIGURES

    import keras_reg

    rows = []
    for name in figures or FIGURES:
        for row in FIGURES[name]():
            row["backend"] = keras.backend.backend()
            row["set"] = name
            rows.append(row)
            print(json.dumps(row), flush=True)
    keras_reg.config.set_rng("portable")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="*", default=list(BACKENDS))
    parser.add_argument(
        "--figures", nargs="*", default=None, help="figure groups (suite.FIGURES)"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"))
    parser.add_argument(
        "--json",
        default=None,
        help="the saved rows (default: results.json beside --output, "
        "results_gpu.json for RESULTS_gpu.md)",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="start from no saved rows instead of merging into them",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="run nothing: render --output (and the Speed page) from the saved rows",
    )
    parser.add_argument(
        "--timings",
        action="store_true",
        help="run the wall-clock timings (TIMINGS) instead of the figures",
    )
    args = parser.parse_args()
    if args.worker:
        worker(args.figures)
        return
    json_path = args.json or json_path_for(args.output)
    saved = None if args.fresh else load_results(json_path)
    if args.render_only:
        if saved is None:
            sys.exit(f"no saved rows at {json_path}")
        write_outputs(saved, args.output)
        return

    from importlib.metadata import version

    if args.timings:
        if saved is None:
            sys.exit(f"no saved rows at {json_path}")
        environment = _environment(version("keras"))
        saved["timings"] = run_timings(saved.get("timings", []), environment)
        with open(json_path, "w") as f:
            json.dump(saved, f, indent=1, ensure_ascii=False)
            f.write("\n")
        write_outputs(saved, args.output)
        return

    rows = []
    for backend in args.backends:
        # The machine's load when this backend's run starts: the figures of
        # a busy machine spread, and the tables say how busy it was.
        load = round(os.getloadavg()[0], 1)
        print(f"=== {backend} (load average {load}) ===", flush=True)
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        cmd = [sys.executable, os.path.abspath(__file__), "--worker"]
        if args.figures:
            cmd += ["--figures", *args.figures]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        for line in proc.stdout.splitlines():
            if line.startswith("{"):
                row = json.loads(line)
                row["load"] = load
                rows.append(row)
                print(f"  {row['figure']}: {row['ratio']:.2f}x", flush=True)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            sys.exit(proc.returncode)
    environment = _environment(version("keras"))
    for row in rows:
        row["date"] = environment["date"]
        row["machine"] = environment["machine"]
    results = merge(saved, rows, environment)
    with open(json_path, "w") as f:
        json.dump(results, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {json_path}")
    write_outputs(results, args.output)


# Wall-clock timings of whole commands, each against a budget in seconds
# rather than a reference: (figure, target seconds, Python code run in a
# subprocess from the repository root that prints the seconds last).
TIMINGS = [
    (
        "`python -m examples.backend_check`: `keras_reg.testing.compare_backends` "
        "on the demo's character model, 3 backends x 3 modes, every layer",
        60,
        "from examples import backend_check\n"
        "report, seconds = backend_check.run()\n"
        "assert report.passed, str(report)\n"
        "print(seconds)",
    ),
]


def run_timings(saved, environment):
    """Runs every command of TIMINGS; returns the saved timings with these
    in their place."""
    timings = [t for t in saved if t["figure"] not in {f for f, _, _ in TIMINGS}]
    for figure, target, code in TIMINGS:
        print(f"=== {figure} ===", flush=True)
        proc = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True
        )
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            sys.exit(proc.returncode)
        seconds = float(proc.stdout.split()[-1])
        print(f"  {seconds:.1f} s (target {target} s)", flush=True)
        timings.append(
            {
                "figure": figure,
                "target_s": target,
                "seconds": round(seconds, 1),
                "date": environment["date"],
                "machine": environment["machine"],
            }
        )
    return timings


def render_timings(timings, level):
    """The wall-clock timings' table, ✓ within the budget, **✗** over it."""
    if not timings:
        return []
    lines = [
        f"{'#' * level} Wall-clock timings (`make bench` runs them too)",
        "",
        "Whole commands timed once against a budget in seconds, not against a "
        "reference.",
        "",
        "| figure | target | time | date | machine |",
        "|---|---|---|---|---|",
    ]
    for t in timings:
        time_cell = f"{t['seconds']:g} s"
        if t["seconds"] <= t["target_s"]:
            time_cell = f"✓ {time_cell}"
        else:
            time_cell = f"**✗ {time_cell}**"
        lines.append(
            f"| {t['figure']} | ≤ {t['target_s']:g} s | {time_cell} | "
            f"{t['date']} | {t['machine']} |"
        )
    return [*lines, ""]


def json_path_for(output):
    """RESULTS.md -> results.json, RESULTS_gpu.md -> results_gpu.json."""
    folder, name = os.path.split(os.path.abspath(output))
    return os.path.join(folder, os.path.splitext(name)[0].lower() + ".json")


def load_results(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def merge(saved, rows, environment):
    """The saved rows with those of this run in their place: a saved row is
    dropped when this run measured its (backend, figure group); the other
    saved rows stay as they were. The groups keep their saved order; new
    groups come last."""
    saved_rows = (saved or {}).get("rows", [])
    ran = {(row["backend"], row["set"]) for row in rows}
    kept = [row for row in saved_rows if (row["backend"], row["set"]) not in ran]
    order = {}
    for row in saved_rows:
        order.setdefault(row["group"], len(order))
    merged = sorted(kept + rows, key=lambda row: order.get(row["group"], len(order)))
    result = {"environment": environment, "rows": merged}
    if (saved or {}).get("timings"):
        result["timings"] = saved["timings"]
    return result


def write_outputs(results, output):
    """Renders `output` from `results`. For RESULTS.md, also the Speed
    page's tables, with the GPU rows of results_gpu.json; for
    RESULTS_gpu.md, RESULTS.md again, whose GPU section it is."""
    folder = os.path.dirname(os.path.abspath(output))
    name = os.path.basename(output)
    if name == "RESULTS_gpu.md":
        _write(output, render_file(results, None))
        main_json = os.path.join(folder, "results.json")
        if os.path.exists(main_json):
            write_outputs(load_results(main_json), os.path.join(folder, "RESULTS.md"))
        return
    gpu = None
    if name == "RESULTS.md":
        gpu = load_results(os.path.join(folder, "results_gpu.json"))
    _write(output, render_file(results, gpu))
    if os.path.abspath(output) == os.path.join(HERE, "RESULTS.md"):
        with open(SPEED_PAGE) as f:
            page = f.read()
        _write(SPEED_PAGE, replace_block(page, render_page_block(results, gpu)))


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)
    print(f"wrote {path}")


def _gpu_name():
    """The GPU the figures ran on, if any (`nvidia-smi`)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out or None


def _environment(keras_version):
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
        f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "keras": keras_version,
        "gpu": _gpu_name(),
        "date": time.strftime("%Y-%m-%d"),
    }


# --- Rendering: RESULTS.md, RESULTS_gpu.md and the Speed page's tables, all
# from the saved rows (results.json, results_gpu.json).

SPEED_PAGE = os.path.join(ROOT, "docs", "guides", "speed.md")
BLOCK_START = (
    "<!-- Written by benchmarks/run.py from benchmarks/results.json and "
    "results_gpu.json: edit the rendering there, not here. -->"
)
BLOCK_END = "<!-- End of the tables written by benchmarks/run.py. -->"

INTRO = (
    "Each figure is time(keras_reg) / time(reference) on the same backend, in "
    "one process, after warm-up, median of interleaved repeats. Below 1 means "
    "keras_reg is faster."
)
LEGEND = (
    "The **target** of a figure is the largest ratio that its code path is "
    "designed to reach (`benchmarks/suite.py`): 1.02 to 1.05 means as fast as "
    "Keras within timing noise, below 1 a speed-up the design promises; where "
    "the backends differ, the target lists theirs in the order of the columns. "
    "✓ marks a figure that meets its target, **✗ one that misses it**; "
    "figures without a target carry no mark."
)
# What the reference of each figure group is, in one sentence (the keys of
# suite.FIGURES). A group without a sentence shows its reference column only.
REFERENCES = {
    "dropout": "The reference is Keras' own `keras.layers.Dropout` (without and "
    "with a seed) called on the same tensor, or, in the last inference row, a "
    "layer that returns its input: the cost of `Layer.__call__` alone.",
    "portable": "The reference is the same keras_reg layer or model with "
    '`keras_reg.config.set_rng("native")`, which draws its masks with '
    "`keras.random` instead of the portable hash.",
    "recurrent": "The reference is Keras' `LSTM`, `GRU` or `SimpleRNN` of the "
    "same size, with the dropout rates named (Keras draws a fresh recurrent "
    "mask at every step) or without dropout, to show what regularizing costs; "
    "one `train_on_batch` or `predict_on_batch` each.",
    "recurrent_modes": "torch: the reference is `torch.nn.LSTM` of the same "
    "size with input dropout .2, the fused kernel with no recurrent dropout "
    "at all, and both sides run the same raw torch training step (forward, "
    "`backward()`, `torch.optim.SGD`; `suite._torch_train_step`) at torch's "
    "default thread count, with no Keras `train_on_batch` on either side; "
    "TensorFlow and JAX: the same `VariationalLSTM` with weight drop "
    "(AWD-LSTM) instead of a batch-shared recurrent mask, one "
    "`train_on_batch` each.",
    "mc_predict": "The reference is 30 calls of `model.predict(x)` on the same "
    "model: the time of 30 forward passes, without drawing any mask.",
    "acquire": "The reference is `mc_predict(model, pool, samples=20, "
    "batch_size=256)` on the same model and pool: the Monte Carlo passes "
    "that every method but random needs. The BatchBALD rows give the whole "
    "call (10 points) and the cost of one more acquired point, "
    "(time(10 points) - time(5 points)) / 5, each over the pool pass (the "
    "median of the three reference times above).",
}
# The group keys of rows saved before rows recorded them.
GROUP_KEYS = {
    "InvertedDropout vs keras.layers.Dropout": "dropout",
    "portable / native": "portable",
    "Recurrent layers vs Keras": "recurrent",
    "Monte Carlo dropout": "mc_predict",
}
# Targets that differ per backend list them in this order (suite.py).
TARGET_ORDER = ("torch", "tensorflow", "jax")


def group_key(title):
    return next((k for p, k in GROUP_KEYS.items() if title.startswith(p)), None)


def targets(target):
    """`"<= 1.05"` -> 1.05 for every backend; `"<= a / b / c"` -> a for torch,
    b for tensorflow, c for jax; anything else -> no target."""
    match = re.fullmatch(r"<=\s*([0-9.]+(?:\s*/\s*[0-9.]+)*)", target.strip())
    if not match:
        return {}
    values = [float(v) for v in match.group(1).split("/")]
    if len(values) == 1:
        return dict.fromkeys(BACKENDS, values[0])
    if len(values) != len(TARGET_ORDER):
        return {}
    return dict(zip(TARGET_ORDER, values, strict=True))


def _target_cell(target):
    limits = targets(target)
    if not limits:
        return target.strip("()") if target else "none"
    if len(set(limits.values())) == 1:
        return f"≤ {next(iter(limits.values())):g}"
    return "≤ " + " / ".join(f"{limits[b]:g}" for b in BACKENDS)


def ratio_cell(row):
    """`✓ 0.547 (38.62 / 70.61 ms)`, `**✗ 1.27** (...)`, or no mark when the
    figure has no target."""
    ratio = f"{row['ratio']:.3g}"
    ms = f"({row['ours_ms']:.2f} / {row['ref_ms']:.2f} ms)"
    limit = targets(row["target"]).get(row["backend"])
    if limit is None:
        return f"{ratio} {ms}"
    if row["ratio"] <= limit:
        return f"✓ {ratio} {ms}"
    return f"**✗ {ratio}** {ms}"


def render_tables(results, level):
    """The environment, the legend and one table per figure group, headings
    at `level`."""
    env = results["environment"]
    rows = results["rows"]
    dates, machines = {}, {}
    for row in rows:
        date = row.get("date", env["date"])
        dates[date] = dates.get(date, 0) + 1
        machine = row.get("machine", env["machine"])
        machines[machine] = machines.get(machine, 0) + 1
    if len(machines) <= 1:
        lines = [f"- Machine: {next(iter(machines), env['machine'])}"]
    else:
        lines = [
            "- Machines: " + ", ".join(f"{m} ({n} rows)" for m, n in machines.items())
        ]
    lines.append(f"- Python {env['python']}, Keras {env['keras']} (the latest run)")
    if env.get("gpu"):
        lines.append(f"- GPU: {env['gpu']}")
    if len(dates) <= 1:
        lines.append(f"- Date: {next(iter(dates), env['date'])}")
    else:
        lines.append(
            "- Dates: " + ", ".join(f"{d} ({n} rows)" for d, n in sorted(dates.items()))
        )
    loads = [row["load"] for row in rows if "load" in row]
    if loads:
        lines.append(
            f"- Load average (1 min) at the start of a run: {min(loads):g} to "
            f"{max(loads):g} ({len(loads)} rows; not recorded for the others)"
            if len(loads) < len(rows)
            else f"- Load average (1 min) at the start of a run: {min(loads):g} "
            f"to {max(loads):g}"
        )
    lines += ["", LEGEND, ""]
    groups = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    for group, group_rows in groups.items():
        lines += [f"{'#' * level} {group}", ""]
        sentence = REFERENCES.get(group_rows[0].get("set") or group_key(group))
        if sentence:
            lines += [sentence, ""]
        lines += ["| figure | reference | target | " + " | ".join(BACKENDS) + " |"]
        lines += ["|---|---|---|" + "---|" * len(BACKENDS)]
        by_figure = {}
        for row in group_rows:
            key = (row["figure"], row["reference"])
            by_figure.setdefault(key, {})[row["backend"]] = row
        for (figure, reference), per_backend in by_figure.items():
            target = next(iter(per_backend.values()))["target"]
            cells = [
                ratio_cell(per_backend[b]) if b in per_backend else "n/a"
                for b in BACKENDS
            ]
            lines.append(
                f"| {figure} | {reference} | {_target_cell(target)} | "
                + " | ".join(cells)
                + " |"
            )
        lines.append("")
    return lines


def render_file(results, gpu):
    """RESULTS.md (the GPU rows in a section of their own) or, without
    `gpu`, RESULTS_gpu.md."""
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`benchmarks/run.py`) from the rows it saved "
        "beside this file (`results.json`). " + INTRO,
        "",
        *render_tables(results, 2),
        *render_timings(results.get("timings"), 2),
    ]
    if gpu:
        lines += [
            "## On a GPU (`benchmarks/gpu.sh`, a separate run)",
            "",
            *render_tables(gpu, 3),
        ]
    return "\n".join(lines).rstrip("\n") + "\n"


def render_page_block(results, gpu):
    """The Speed page's tables: those of RESULTS.md, headings one level
    down."""
    lines = [BLOCK_START, "", "### On the CPU", "", *render_tables(results, 4)]
    if gpu:
        lines += ["### On a GPU", "", *render_tables(gpu, 4)]
    return "\n".join([*lines, BLOCK_END])


def replace_block(page, block):
    """`page` with the text from the start marker to the end marker replaced
    by `block`."""
    start = page.index(BLOCK_START)
    end = page.index(BLOCK_END) + len(BLOCK_END)
    return page[:start] + block + page[end:]


def parse_results_md(text):
    """The rows of a RESULTS.md written before results.json existed (cells
    `**ratio** (ours / ref ms)`), to seed results.json once. Stops at the
    GPU section, which RESULTS_gpu.md holds."""
    env = {"gpu": None}
    fields = {"- Machine: ": "machine", "- GPU: ": "gpu", "- Date: ": "date"}
    rows, group = [], None
    for line in text.splitlines():
        if line.startswith("## On a GPU"):
            break
        for prefix, key in fields.items():
            if line.startswith(prefix):
                env[key] = line[len(prefix) :]
        m = re.match(r"- Python (\S+), Keras (\S+)", line)
        if m:
            env["python"], env["keras"] = m.groups()
        if line.startswith("## "):
            group = line[3:]
            continue
        if not line.startswith("| ") or line.startswith("| figure |"):
            continue
        figure, reference, target, *values = (
            c.strip() for c in line.strip().strip("|").split(" | ")
        )
        for backend, cell in zip(BACKENDS, values, strict=True):
            m = re.fullmatch(r"\*\*([0-9.e+-]+)\*\* \(([0-9.]+) / ([0-9.]+) ms\)", cell)
            if m:
                rows.append(
                    {
                        "group": group,
                        "set": group_key(group),
                        "figure": figure,
                        "reference": reference,
                        "target": target,
                        "ours_ms": float(m.group(2)),
                        "ref_ms": float(m.group(3)),
                        "ratio": float(m.group(1)),
                        "backend": backend,
                        "date": env["date"],
                        "machine": env["machine"],
                    }
                )
    return {"environment": env, "rows": rows}


if __name__ == "__main__":
    main()
