"""The report of `compare_backends`: statistics, the table, JSON, saving."""

import json
import os
import platform

import numpy as np

# Default `(atol, rtol)` by the compute dtype of the compared value, set from
# the cross-backend differences measured on the test suite's zoo model and
# the demo models (docs/guides/checking-a-backend-switch.md has the
# figures). Integer and boolean values must be equal.
# float32: the zoo model (6 steps, 6 units) differs by at most 7e-6, the
# demo's character model (64 steps, 384 units) by 3e-4 in its outputs and
# 1.4e-3 in its gradients (rounding that the recurrence amplifies).
# bfloat16: the zoo model differs by at most 0.15 (the character model by
# 2, beyond any useful tolerance: compare deep recurrences in float32).
# float16 and float64 are not measured: scaled from their precision.
TOLERANCES = {
    "float64": (1e-9, 1e-7),
    "float32": (5e-3, 1e-3),
    "float16": (5e-2, 1e-2),
    "bfloat16": (0.3, 5e-2),
}
EXACT = (0.0, 0.0)
# `max_rel` divides by `max(|b|, TINY)`; a float64 value, so never NaN.
TINY = float(np.finfo("float64").tiny)
HUGE = float(np.finfo("float64").max)
MODES = ("inference", "training", "gradients")


def tolerance(dtype, atol=None, rtol=None):
    """`(atol, rtol)` for a value of `dtype`, the given ones taking over."""
    default = TOLERANCES.get(dtype, EXACT)
    return (
        default[0] if atol is None else float(atol),
        default[1] if rtol is None else float(rtol),
    )


def statistics(a, b, atol, rtol):
    """`max_abs`, `max_rel`, `mean_abs`, `passed` and `excess` (the largest
    `|a - b| / (atol + rtol * |b|)`) of `a` against the reference `b`.

    NaN against NaN and equal infinities count as equal; any other
    non-finite difference, or a shape mismatch, gives `HUGE` and fails.
    """
    a = np.asarray(a, "float64")
    b = np.asarray(b, "float64")
    if a.shape != b.shape:
        return {
            "max_abs": HUGE,
            "max_rel": HUGE,
            "mean_abs": HUGE,
            "passed": False,
            "excess": HUGE,
            "why": f"shape {a.shape} against {b.shape}",
        }
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(same, 0.0, np.abs(a - b))
    diff = np.where(np.isfinite(diff), diff, HUGE)
    scale = np.where(np.isfinite(b), np.abs(b), HUGE)
    if diff.size == 0:
        return {
            "max_abs": 0.0,
            "max_rel": 0.0,
            "mean_abs": 0.0,
            "passed": True,
            "excess": 0.0,
        }
    bound = atol + rtol * scale
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rel = diff / np.maximum(scale, TINY)
        excess = np.where(diff == 0, 0.0, diff / np.maximum(bound, TINY))
    with np.errstate(over="ignore"):
        mean = float(np.mean(diff))
    return {
        "max_abs": float(diff.max()),
        "max_rel": float(min(rel.max(), HUGE)),
        "mean_abs": min(mean, HUGE) if np.isfinite(mean) else HUGE,
        "passed": bool(np.all(diff <= bound)),
        "excess": float(min(excess.max(), HUGE)),
    }


def _layer_of(entry):
    """The layer a compared value belongs to: a weight's layer is its path
    without the variable name."""
    if entry["kind"] == "gradient":
        return entry["name"].rsplit("/", 1)[0]
    return entry["name"]


class BackendReport:
    """What `keras_reg.testing.compare_backends` found.

    Attributes:
        passed: True when every compared value is within tolerance and
            every backend ran.
        backends: the backends that were run.
        reference: the reference: a backend's name, or the folder given
            as `reference`.
        comparisons: one dict per compared value (see `to_dict`).
        first_divergence: None, or `{"mode", "backend", "layer"}`: the first
            layer (in topological order) that differs from the reference,
            in the first mode and backend that differ.
        non_portable: `{"layer", "class", "suggestion"}` for each layer whose
            randomness differs by backend.
        errors: `{"backend", "message"}` for each backend that could not run.
        notes: sentences about what was left out of the comparison (the
            layers of a subclassed model, for instance).
        seconds: the wall time of the whole check, and `timings` per backend.

    Example:

    >>> from keras_reg.testing import compare_backends
    >>> report = compare_backends("model.keras", "inputs.npz")  # doctest: +SKIP
    >>> print(report)  # doctest: +SKIP
    """

    def __init__(
        self,
        backends,
        reference,
        modes,
        comparisons,
        non_portable,
        errors,
        notes=(),
        timings=None,
        seconds=0.0,
        results=None,
    ):
        self.backends = list(backends)
        self.reference = reference
        self.modes = list(modes)
        self.comparisons = list(comparisons)
        self.non_portable = list(non_portable)
        self.errors = list(errors)
        self.notes = list(notes)
        self.timings = dict(timings or {})
        self.seconds = float(seconds)
        self._results = results or {}
        self.passed = not self.errors and all(c["passed"] for c in self.comparisons)
        self.first_divergence = self._first_divergence()

    def _first_divergence(self):
        kinds = ("layer", "output", "loss", "gradient")
        for mode in self.modes:
            for backend in self.backends:
                failed = [
                    c
                    for c in self.comparisons
                    if c["mode"] == mode and c["backend"] == backend and not c["passed"]
                ]
                for kind in kinds:
                    for c in failed:
                        if c["kind"] == kind:
                            return {
                                "mode": mode,
                                "backend": backend,
                                "layer": _layer_of(c),
                            }
        return None

    def to_dict(self):
        """The report as plain JSON data: `{"passed", "backends",
        "reference", "comparisons", "first_divergence", "non_portable",
        "errors"}`; each comparison is `{"mode", "backend", "kind", "name",
        "max_abs", "max_rel", "mean_abs", "passed"}`."""
        keys = ("mode", "backend", "kind", "name", "max_abs", "max_rel")
        keys += ("mean_abs", "passed")
        return {
            "passed": self.passed,
            "backends": list(self.backends),
            "reference": self.reference,
            "comparisons": [{k: c[k] for k in keys} for c in self.comparisons],
            "first_divergence": (
                dict(self.first_divergence) if self.first_divergence else None
            ),
            "non_portable": [dict(item) for item in self.non_portable],
            "errors": [dict(item) for item in self.errors],
        }

    def _rows(self):
        rows = []
        for backend in self.backends:
            if backend in {e["backend"] for e in self.errors}:
                rows.append([backend, "-", "-", "-", "-", "-", "ERROR"])
                continue
            for mode in self.modes:
                found = [
                    c
                    for c in self.comparisons
                    if c["backend"] == backend and c["mode"] == mode
                ]
                if not found:
                    verdict = "reference" if backend == self.reference else "recorded"
                    rows.append([backend, mode, "-", "-", "-", "-", verdict])
                    continue
                worst = max(found, key=lambda c: c["excess"])
                rows.append(
                    [
                        backend,
                        mode,
                        str(len(found)),
                        f"{worst['kind']} {worst['name']}",
                        f"{worst['max_abs']:.3g}",
                        f"{worst['max_rel']:.3g}",
                        "PASS" if all(c["passed"] for c in found) else "FAIL",
                    ]
                )
        return rows

    def table(self):
        """The table: one row per backend and mode, its worst value, and
        PASS or FAIL."""
        header = ["backend", "mode", "values", "worst", "max_abs", "max_rel", "result"]
        rows = [header] + self._rows()
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = []
        for index, row in enumerate(rows):
            lines.append(
                "  ".join(
                    cell.ljust(width) for cell, width in zip(row, widths, strict=True)
                ).rstrip()
            )
            if index == 0:
                lines.append("  ".join("-" * width for width in widths))
        return "\n".join(lines)

    def __str__(self):
        lines = [f"reference: {self.reference}", self.table(), ""]
        if self.first_divergence:
            d = self.first_divergence
            lines.append(
                f"first divergence: layer {d['layer']!r} ({d['mode']}, "
                f"{d['backend']} against {self.reference})"
            )
        for item in self.non_portable:
            lines.append(
                f"non-portable: {item['layer']!r} ({item['class']}) draws "
                f"backend-native random numbers; use instead: {item['suggestion']}"
            )
        for note in self.notes:
            lines.append(f"note: {note}")
        for error in self.errors:
            lines.append(f"error: {error['backend']}: {error['message']}")
        lines.append(f"{'PASSED' if self.passed else 'FAILED'} in {self.seconds:.1f} s")
        return "\n".join(lines)

    def __repr__(self):
        return (
            f"<BackendReport passed={self.passed} backends={self.backends} "
            f"reference={self.reference!r}>"
        )

    def save_outputs(self, folder):
        """Writes the reference's outputs into `folder` (created if needed),
        for a later `compare_backends(..., reference=folder)` on another
        machine or device: `outputs.json` (what each array is, the backend,
        Keras version and host) and `outputs.npz`."""
        source = self.reference if self.reference in self._results else None
        if source is None:
            source = next(iter(self._results), None)
        if source is None:
            raise ValueError(
                "Nothing to save: no backend ran "
                f"(errors: {[e['message'] for e in self.errors]})."
            )
        meta, arrays = self._results[source]
        os.makedirs(folder, exist_ok=True)
        meta = dict(meta, host=meta.get("host", platform.node()))
        with open(os.path.join(folder, "outputs.json"), "w") as f:
            json.dump(meta, f, indent=1)
        np.savez(os.path.join(folder, "outputs.npz"), **arrays)
        return folder
