"""`make bench`: ratios of keras_reg layers against Keras built-ins.

Every figure is `time(ours) / time(reference)`, both timed in the same
process on the same backend, after warm-up, as the median of interleaved
repeats (A, B, A, B, ...), so slow drift of a noisy machine hits both.
Each backend runs in its own subprocess; the results go to
`benchmarks/RESULTS.md`.

    python benchmarks/run.py                  # all backends
    python benchmarks/run.py --backends jax   # one
"""

import argparse
import json
import os
import platform
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
            rows.append(row)
            print(json.dumps(row), flush=True)
    keras_reg.config.set_rng("portable")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="*", default=list(BACKENDS))
    parser.add_argument("--figures", nargs="*", default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"))
    args = parser.parse_args()
    if args.worker:
        worker(args.figures)
        return

    from importlib.metadata import version

    rows = []
    for backend in args.backends:
        print(f"=== {backend} ===", flush=True)
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        cmd = [sys.executable, os.path.abspath(__file__), "--worker"]
        if args.figures:
            cmd += ["--figures", *args.figures]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        for line in proc.stdout.splitlines():
            if line.startswith("{"):
                row = json.loads(line)
                rows.append(row)
                print(f"  {row['figure']}: {row['ratio']:.2f}x", flush=True)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            sys.exit(proc.returncode)
    write_results(rows, args.output, version("keras"))
    print(f"wrote {args.output}")


def _gpu_lines():
    """The GPU the figures ran on, if any (`nvidia-smi`)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return []
    return [f"- GPU: {out}"] if out else []


def write_results(rows, path, keras_version):
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`benchmarks/run.py`). Each figure is "
        "time(keras_reg) / time(reference) on the same backend, in one "
        "process, after warm-up, median of 30 interleaved repeats. Below 1 "
        "means keras_reg is faster.",
        "",
        f"- Machine: {platform.machine()}, {os.cpu_count()} CPU cores, "
        f"{platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}, Keras {keras_version}",
        *_gpu_lines(),
        f"- Date: {time.strftime('%Y-%m-%d')}",
        "",
    ]
    groups = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    for group, group_rows in groups.items():
        lines += [f"## {group}", ""]
        lines += ["| figure | reference | target | " + " | ".join(BACKENDS) + " |"]
        lines += ["|---|---|---|" + "---|" * len(BACKENDS)]
        by_figure = {}
        for row in group_rows:
            key = (row["figure"], row["reference"])
            by_figure.setdefault(key, {})[row["backend"]] = row
        for (figure, _), per_backend in by_figure.items():
            any_row = next(iter(per_backend.values()))
            cells = []
            for backend in BACKENDS:
                row = per_backend.get(backend)
                if row is None:
                    cells.append("n/a")
                    continue
                ms = f"{row['ours_ms']:.2f} / {row['ref_ms']:.2f} ms"
                cells.append(f"**{row['ratio']:.3g}** ({ms})")
            lines.append(
                f"| {figure} | {any_row['reference']} | {any_row['target']} | "
                + " | ".join(cells)
                + " |"
            )
        lines.append("")
    lines += _gpu_section(path)
    with open(path, "w") as f:
        f.write("\n".join(lines))


def _gpu_section(path):
    """The GPU figures (`benchmarks/gpu.sh`, run on a GPU machine), kept in
    `RESULTS_gpu.md` beside `RESULTS.md` and repeated in it."""
    gpu = os.path.join(os.path.dirname(os.path.abspath(path)), "RESULTS_gpu.md")
    if os.path.basename(path) != "RESULTS.md" or not os.path.exists(gpu):
        return []
    with open(gpu) as f:
        body = f.read().splitlines()
    # Its own header, one level down; its paragraph on how it was measured.
    body = [("#" + line) if line.startswith("#") else line for line in body]
    body[0] = "## On a GPU (`benchmarks/gpu.sh`, a separate run)"
    return ["", *body]


if __name__ == "__main__":
    main()
