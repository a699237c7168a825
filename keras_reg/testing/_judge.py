"""Judging: the tolerance rule and the statistics of one comparison.

One comparison is one tensor (an output, a layer's output, the loss, one
weight's gradient), computed on a backend (`a`) and on the reference (`b`).
It is judged at the scale of the reference's values, so that one default
serves values of any magnitude:

    scale = max(max |b|, FLOOR * G, FAMILY * F)        (finite values of b)
    passes when   max |a - b| <= atol + rtol * scale
    and, in bfloat16 only,
                 mean |a - b| <= atol + MEAN_SHARE * rtol * mean |b|

- `rtol` is a fraction of the tensor's scale: the largest difference may
  reach that fraction of the largest reference value.
- `G` is the largest reference value among every tensor of the same kind
  in the same mode (all the gradients of one call, all the layers'
  outputs), and `FLOOR` a small share of it by dtype (float32: 1e-5,
  16-bit floats: 1e-2): a tensor whose values are that far below the
  largest of its kind is at the rounding level of the computation, and is
  judged against that level instead of its own scale. Measured: the
  gradients of a BatchNormalization's beta whose exact value is 0 (a sum
  that cancels) came out 0 on TensorFlow and up to 1.3e-7 on torch and
  JAX, while the largest gradient of the same call was 104 (a random
  MobileNetV3Small): 1.2e-9 of it, 10 units in the last place of float32.
  Judged at their own scale they differed by 240% to infinitely; at the
  floor they pass with a margin of 15. A 1% difference still fails in
  every tensor whose values reach 1e-5 of the largest of their kind
  (16-bit: 1e-2); below that, differences up to `rtol * FLOOR * G` pass.
- `F` is, for a weight's gradient, the largest reference value among the
  gradients of the same layer (the variables whose paths share everything
  before the last `/`: `bn/gamma` and `bn/beta`, `dense/kernel` and
  `dense/bias`), and `FAMILY` a share of it by dtype (float32: 1e-3; other
  dtypes: unmeasured, and no larger than `FLOOR`, so it changes nothing
  there). A layer's gradients are sums over the same upstream gradient
  `g`: a BatchNormalization's beta gets `sum g`, its gamma
  `sum g * xhat` (`xhat` of unit variance). Where `sum g` cancels (the
  layer feeds a 1x1 convolution and another BatchNormalization, which
  removes any shift: beta's exact gradient is 0), its float32 value is the
  rounding of that sum, about `2**-24 * |sum g * xhat|`, so the gamma
  gradient, not G, sets its rounding level. Measured on a random
  MobileNetV3Small (2 images of 32x32 pixels in [0, 255]): such betas came
  out up to 3e-8 * G on every backend, TensorFlow included, against a
  float64 TensorFlow run whose value is 1e-16 * G; judged at the floor of
  their kind they failed (excess 2.7), at 1e-3 of their gamma's gradient
  they pass (excess at most 0.5 against the float64 values). A 1%
  difference still fails in every gradient that reaches 1e-3 of the
  largest gradient of its layer.
- The mean condition is for bfloat16, where one rounding step (one unit in
  the last place, up to 2**-7 of a value) and a 1% difference (as little
  as 0.67% of each value, once rounded) overlap: no bound on the largest
  difference separates them. A rounding difference touches some elements,
  a systematic one every element, so the mean tells them apart (from about
  8 elements on; a one-element bfloat16 tensor that differs by one unit in
  the last place fails). In float32, float16 and float64 a 1% difference
  is many rounding steps, and the first condition alone separates them; a
  mean condition there would fail heavy-tailed tensors (an embedding's
  gradient) on rounding alone.
- `atol` is an absolute floor below which differences are ignored: by
  default the compute dtype's smallest normal number (float32: 1.2e-38), so
  a tensor that is zero on both sides passes and a flush-to-zero difference
  is not a failure; it plays no part at any other scale.
- NaN anywhere (in `a` or in `b`) fails, whatever the tolerances. Equal
  infinities count as equal; any other non-finite difference fails.
- Integer and boolean values must be equal.

The defaults depend on the dtype the value was computed in (see
`compute_dtype`), and were set from measurements (the guide "Checking a
backend switch" has them): in float32, the demo's character model (a
64-step, 384-unit LayerNormLSTM) differs across backends by at most 3.0e-4
of a tensor's scale, in every mode (its training-mode LSTM output, its
gradients 2.7e-4); a 1% difference is 1e-2 of it. `rtol` 2e-3 sits between
them, about 7 times above the one and 5 times below the other.

`max_rel` is `max |a - b| / scale` (divided by the smallest positive
float64 where the reference is all zeros), a finite float.
"""

import numpy as np

# `(atol, rtol)` by compute dtype: atol the dtype's smallest normal number,
# rtol the fraction of the tensor's scale.
TOLERANCES = {
    "float64": (float(np.finfo("float64").tiny), 1e-7),
    "float32": (float(np.finfo("float32").tiny), 2e-3),
    "float16": (float(np.finfo("float16").tiny), 2.0**-8),
    # One unit in the last place of the largest element, 2**-7 of it at
    # most, passes; a 1% difference is at least 0.67% of every element.
    "bfloat16": (float(np.finfo("float32").tiny), 2.0**-7),
}
EXACT = (0.0, 0.0)
# The share of the largest reference value of a kind (in a mode) below
# which a tensor is judged at that share instead of its own scale.
FLOORS = {"float64": 1e-12, "float32": 1e-5, "float16": 1e-2, "bfloat16": 1e-2}
# The share of the largest reference gradient of the same layer (`F`) below
# which a gradient is judged at that share; measured in float32 only (a
# share no larger than FLOORS, as here for the other dtypes, is a no-op:
# F <= G).
FAMILIES = {"float64": 1e-12, "float32": 1e-3, "float16": 1e-2, "bfloat16": 1e-2}
# The mean condition's share of `rtol`, and the dtypes it applies to.
MEAN_SHARE = 0.75
MEAN_DTYPES = ("bfloat16",)
TINY = float(np.finfo("float64").tiny)
HUGE = float(np.finfo("float64").max)
# Least precise first: the dtype a mixed computation is judged in.
_PRECISION = ("bfloat16", "float16", "float32", "float64")


def compute_dtype(dtypes):
    """The least precise floating dtype among `dtypes` (None if none is
    floating): a value computed from bfloat16 values is judged as
    bfloat16, whatever dtype holds it."""
    found = [d for d in _PRECISION if d in set(dtypes)]
    return found[0] if found else None


def tolerance(dtype, atol=None, rtol=None):
    """`(atol, rtol)` for a value computed in `dtype`, the given ones
    taking over."""
    default = TOLERANCES.get(dtype, EXACT)
    return (
        default[0] if atol is None else float(atol),
        default[1] if rtol is None else float(rtol),
    )


def _ratio(value, bound):
    """`value / bound`; 0 for a zero value, HUGE for a zero bound."""
    if value == 0:
        return 0.0
    if bound <= 0:
        return HUGE
    return float(min(value / bound, HUGE))


def _failed(why):
    return {
        "max_abs": HUGE,
        "max_rel": HUGE,
        "mean_abs": HUGE,
        "passed": False,
        "excess": HUGE,
        "why": why,
    }


def statistics(a, b, atol, rtol, mean=False, floor=0.0):
    """Judges `a` against the reference `b` (see the module docstring);
    `mean`: also the mean condition; `floor`: the least scale (`FLOOR * G`).

    Returns `max_abs`, `max_rel` (`max_abs / scale`), `mean_abs`, `passed`
    and `excess` (how far past its bound the worse condition is: 1 is the
    limit, beyond 1 fails), plus `why` where it failed for a reason other
    than size (a shape, NaN).
    """
    a = np.asarray(a, "float64")
    b = np.asarray(b, "float64")
    if a.shape != b.shape:
        return _failed(f"shape {a.shape} against {b.shape}")
    if a.size == 0:
        return {
            "max_abs": 0.0,
            "max_rel": 0.0,
            "mean_abs": 0.0,
            "passed": True,
            "excess": 0.0,
        }
    if np.isnan(b).any():
        return _failed("NaN in the reference")
    if np.isnan(a).any():
        return _failed("NaN in the compared values")
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(a == b, 0.0, np.abs(a - b))
    if not np.isfinite(diff).all():
        return _failed("a non-finite difference (an infinity, or past float64)")
    # Equal infinities count as 0 in the scale.
    magnitude = np.abs(np.where(np.isfinite(b), b, 0.0))
    scale = max(float(magnitude.max()), floor)
    max_abs = float(diff.max())
    # Means of values near float64's limit overflow: HUGE, a plain float.
    with np.errstate(over="ignore"):
        mean_scale = max(float(min(magnitude.mean(), HUGE)), floor)
        mean_abs = float(min(np.mean(diff), HUGE))
    excess = _ratio(max_abs, atol + rtol * scale)
    if mean:
        excess = max(excess, _ratio(mean_abs, atol + MEAN_SHARE * rtol * mean_scale))
    return {
        "max_abs": max_abs,
        "max_rel": _ratio(max_abs, max(scale, TINY)),
        "mean_abs": mean_abs,
        "passed": excess <= 1.0,
        "excess": excess,
    }


def _largest_by_kind(modes, meta, arrays):
    """`G` of the module docstring: the largest finite absolute reference
    value of each `(mode, kind)`."""
    largest = {}
    for entry in meta["entries"]:
        if entry["mode"] not in modes:
            continue
        values = np.abs(np.asarray(arrays[entry["key"]], "float64"))
        values = values[np.isfinite(values)]
        top = float(values.max()) if values.size else 0.0
        key = (entry["mode"], entry["kind"])
        largest[key] = max(largest.get(key, 0.0), top)
    return largest


def _family(entry):
    """The layer a gradient belongs to: its variable path less the last
    part (None for any other kind, and for a path without `/`)."""
    if entry["kind"] != "gradient" or "/" not in entry["name"]:
        return None
    return entry["mode"], entry["name"].rsplit("/", 1)[0]


def _largest_by_family(modes, meta, arrays):
    """`F` of the module docstring: the largest finite absolute reference
    value among the gradients of each layer (in each mode)."""
    largest = {}
    for entry in meta["entries"]:
        family = _family(entry)
        if entry["mode"] not in modes or family is None:
            continue
        values = np.abs(np.asarray(arrays[entry["key"]], "float64"))
        values = values[np.isfinite(values)]
        top = float(values.max()) if values.size else 0.0
        largest[family] = max(largest.get(family, 0.0), top)
    return largest


def compare(modes, reference, candidate, backend, atol, rtol):
    """One comparison per reference entry of `modes`: `{"mode", "backend",
    "kind", "name", "dtype", "atol", "rtol", "max_abs", "max_rel",
    "mean_abs", "passed", "excess"}` and `"why"` where `statistics` gives
    one; a value the candidate lacks fails.
    `reference` and `candidate` are `(meta, arrays)` as the worker writes
    them."""
    ref_meta, ref_arrays = reference
    meta, arrays = candidate
    index = {(e["mode"], e["kind"], e["name"]): e for e in meta["entries"]}
    # A run without layers (`layers=False`, a subclassed model) is compared
    # by what it has; a missing output, loss or gradient fails.
    has_layers = any(e["kind"] == "layer" for e in meta["entries"])
    largest = _largest_by_kind(modes, ref_meta, ref_arrays)
    families = _largest_by_family(modes, ref_meta, ref_arrays)
    comparisons = []
    for entry in ref_meta["entries"]:
        if entry["mode"] not in modes:
            continue
        if entry["kind"] == "layer" and not has_layers:
            continue
        found = index.get((entry["mode"], entry["kind"], entry["name"]))
        # Judged in the least precise dtype either side computed in.
        dtypes = [entry.get("compute_dtype", entry["dtype"])]
        if found is not None:
            dtypes.append(found.get("compute_dtype", found["dtype"]))
        dtype = compute_dtype(dtypes) or entry["dtype"]
        atol_, rtol_ = tolerance(dtype, atol, rtol)
        if found is None:
            stats = _failed(f"no such value from {backend}")
        else:
            floor = FLOORS.get(dtype, 0.0) * largest[entry["mode"], entry["kind"]]
            family = _family(entry)
            if family is not None:
                floor = max(floor, FAMILIES.get(dtype, 0.0) * families[family])
            stats = statistics(
                arrays[found["key"]],
                ref_arrays[entry["key"]],
                atol_,
                rtol_,
                mean=dtype in MEAN_DTYPES,
                floor=floor,
            )
        comparisons.append(
            {
                "mode": entry["mode"],
                "backend": backend,
                "kind": entry["kind"],
                "name": entry["name"],
                "dtype": dtype,
                "atol": atol_,
                "rtol": rtol_,
                **stats,
            }
        )
    return comparisons
