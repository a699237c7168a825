"""The report of `compare_backends`: the verdict, the first divergence,
the table, JSON, saving the outputs. How each value is judged is
`_judge.py`'s job."""

import json
import os
import platform

import numpy as np

from keras_reg.testing._judge import MEAN_DTYPES, MEAN_SHARE


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
        compared: the number of comparisons made (0 with one backend and
            no reference: the run only recorded outputs).
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
        tolerances: the `atol` and `rtol` given (None: by dtype).
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
        tolerances=None,
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
        self.tolerances = dict(tolerances or {"atol": None, "rtol": None})
        self.compared = len(self.comparisons)
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

    def verdict(self):
        """`"PASSED"`, `"FAILED"`, or `"NOTHING COMPARED"` (every backend
        ran, but there was nothing to compare with)."""
        if not self.passed:
            return "FAILED"
        return "PASSED" if self.compared else "NOTHING COMPARED"

    def _tolerances(self):
        by_dtype = {}
        for c in self.comparisons:
            by_dtype.setdefault(c["dtype"], {"atol": c["atol"], "rtol": c["rtol"]})
        return {
            "atol": self.tolerances.get("atol"),
            "rtol": self.tolerances.get("rtol"),
            "mean_share": MEAN_SHARE,
            "mean_dtypes": list(MEAN_DTYPES),
            "by_dtype": by_dtype,
        }

    def to_dict(self):
        """The report as plain JSON data: `{"passed", "backends",
        "reference", "comparisons", "first_divergence", "non_portable",
        "errors", "compared", "tolerances", "notes"}`; each comparison is
        `{"mode", "backend", "kind", "name", "max_abs", "max_rel",
        "mean_abs", "passed"}`; `tolerances` is `{"atol", "rtol"}` as given
        (None: by dtype), `"mean_share"` and `"by_dtype"`: `{dtype:
        {"atol", "rtol"}}` for each compute dtype judged."""
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
            "compared": self.compared,
            "tolerances": self._tolerances(),
            "notes": list(self.notes),
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
        for c in self.comparisons:
            if c.get("why"):
                lines.append(
                    f"failed: {c['kind']} {c['name']!r} ({c['mode']}, "
                    f"{c['backend']}): {c['why']}"
                )
        for note in self.notes:
            lines.append(f"note: {note}")
        for error in self.errors:
            lines.append(f"error: {error['backend']}: {error['message']}")
        if not self.compared and not self.errors:
            lines.append(
                "nothing compared: one backend and no reference; the outputs "
                "were recorded (save them with save_outputs)"
            )
        lines.append(f"{self.verdict()} in {self.seconds:.1f} s")
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
