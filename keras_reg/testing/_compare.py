"""`compare_backends` and `assert_same_on_backends`: the arguments are
checked (`_arguments`), the model file read (`_model_file`), the inputs
loaded (`_inputs`), one subprocess run per backend (`_runner`, running
`_worker`), each value judged (`_judge`) and the report built
(`_report`)."""

import os
import tempfile
import time

import numpy as np

from keras_reg.testing import (
    _arguments,
    _inputs,
    _judge,
    _model_file,
    _report,
    _runner,
)


def compare_backends(
    model,
    inputs,
    backends=None,
    modes=("inference", "training"),
    layers=True,
    atol=None,
    rtol=None,
    imports=(),
    reference=None,
    timeout=None,
    jobs=None,
):
    """Runs a model on several Keras backends and compares what they compute.

    Each backend runs in its own subprocess (`KERAS_BACKEND` set, the
    caller's environment and `sys.path` inherited), which imports
    `keras_reg` and the modules in `imports`, loads the `.keras` file once
    and runs every mode in it. The first backend is the reference unless
    `reference` is given; with one backend and no `reference`, nothing is
    compared (`report.compared == 0`): the run only records outputs for
    `report.save_outputs`.

    One comparison is one tensor (an output, a layer's output, the loss,
    one weight's gradient), judged at the scale of its reference values
    `b` (`a` the backend's):

        max |a - b| <= atol + rtol * max |b|

    and in bfloat16 also `mean |a - b| <= atol + 0.75 * rtol * mean |b|`
    (a 1% difference and one rounding step are both about one unit in the
    last place there: the mean tells a systematic difference from
    rounding). A tensor whose values are below 1e-5 (float32; 16-bit
    floats: 1e-2) of the largest reference value of its kind in its mode
    (all the gradients of a call, say) is at the computation's rounding
    level, and `max |b|` is replaced by that floor: a gradient that is
    exactly 0 on one backend and 1e-9 on another beside gradients of 100
    passes. A weight's gradient below 1e-3 (float32) of the largest
    gradient of its own layer (the variables whose paths share all but the
    last part: a BatchNormalization's beta beside its gamma) is judged at
    that share instead: a sum that cancels to 0 is rounded at the level of
    its layer's gradients. `rtol` is a fraction of the tensor's scale,
    `atol` an absolute floor below which differences are ignored. NaN on
    either side fails. A value is judged in the least precise dtype it
    was computed from (a `mixed_bfloat16` model's gradients and loss:
    bfloat16). The defaults:
    float32 `rtol` 2e-3, bfloat16 2**-7 (one unit in the last place),
    float16 2**-8, float64 1e-7; `atol` the dtype's smallest normal number
    (float32: 1.2e-38). A 1% difference fails at any scale, in every mode;
    the rounding of the demo's 64-step character model passes.

    A backend that cannot run the model (not installed, a custom layer not
    importable, a load error, a timeout) gives an entry in `errors` and a
    failed report; it never hangs or crashes the caller.

    Args:
        model: a `keras.Model` (saved to a temporary `.keras` file first),
            or the path of a `.keras` file.
        inputs: a NumPy array, a list, tuple or dict of arrays, or the path
            of an `.npz` file (keys are the model's input names, or
            `arr_0`, `arr_1`, ... in order).
        backends: names among `"tensorflow"`, `"torch"` and `"jax"`, or a
            comma-separated string. Defaults to every installed one.
        modes: among `"inference"` (`training=False`), `"training"` (one
            `training=True` call from the saved random state) and
            `"gradients"` (for one training-mode call from the same state,
            the mean of the squared outputs summed over the outputs, and
            its gradient for every trainable weight). Defaults to
            `("inference", "training")`.
        layers: for functional and sequential models (nested ones
            included), also compare every layer's output, so the report
            names the first layer that differs. Defaults to `True`.
        atol: the absolute floor, below which differences are ignored.
            Defaults to `None`: the smallest normal number of each value's
            compute dtype (float32 and bfloat16: 1.2e-38).
        rtol: the fraction of each tensor's scale (`max |b|`) that a
            difference may reach. Defaults to `None`: by the compute dtype
            (float32: 2e-3, bfloat16: 2**-7, float16: 2**-8, float64: 1e-7).
        imports: modules each subprocess imports before loading the model
            (where custom layers are registered). Defaults to `()`.
        reference: a folder written by `report.save_outputs` (on another
            machine or device, for instance); every backend is compared
            with it. Defaults to `None`.
        timeout: seconds one backend's subprocess may run (loading and
            every mode) before it is stopped and reported as an error.
            Defaults to `None`: the environment variable
            `KERAS_REG_CHECK_TIMEOUT`, else 600.
        jobs: how many subprocesses run at a time. Defaults to `None`: the
            environment variable `KERAS_REG_CHECK_JOBS`, else one per
            backend up to the number of CPUs.

    Returns:
        A `BackendReport`: `passed`, `compared`, `first_divergence`,
        `non_portable`, `to_dict()`, `save_outputs(folder)`, and the table
        as `str(report)`.

    Raises:
        ValueError: an unknown backend or mode, a negative tolerance, a
            timeout or jobs out of range, inputs that do not match the
            model's inputs, an `.npz` file with unexpected keys.
        FileNotFoundError: a missing model, inputs or reference file.
        TypeError: a model or inputs of the wrong type.

    Example:

    >>> import keras, numpy as np
    >>> from keras_reg import layers
    >>> from keras_reg.testing import compare_backends
    >>> inputs = keras.Input((8,))
    >>> x = layers.InvertedDropout(0.3, seed=1)(keras.layers.Dense(8)(inputs))
    >>> model = keras.Model(inputs, keras.layers.Dense(2)(x))
    >>> x = np.random.default_rng(0).normal(size=(4, 8)).astype("float32")
    >>> report = compare_backends(model, x)  # doctest: +SKIP
    >>> report.passed  # doctest: +SKIP
    True
    """
    start = time.perf_counter()
    modes = _arguments.names("modes", modes, _arguments.MODES)
    if backends is None:
        backends = _runner.installed_backends()
        if not backends:
            raise ValueError("No Keras backend is installed (tensorflow, torch, jax).")
    backends = _arguments.names("backends", backends, _arguments.BACKENDS)
    atol = _arguments.tolerance("atol", atol)
    rtol = _arguments.tolerance("rtol", rtol)
    timeout = _arguments.timeout(timeout)
    jobs = _arguments.jobs(jobs, len(backends))
    imports = _arguments.imports(imports)
    reference_data = None
    if reference is not None:
        reference_data = _inputs.load_reference(reference, modes)
    with tempfile.TemporaryDirectory(prefix="keras_reg_check_") as directory:
        path = _model_file.path_of(model, directory)
        structure, specs = _model_file.input_specs(path)
        kind, names, arrays = _inputs.read(inputs, structure, specs)
        _inputs.check(kind, names, arrays, specs)
        inputs_path = os.path.join(directory, "inputs.npz")
        np.savez(inputs_path, *arrays)
        spec = {
            "model": path,
            "inputs": inputs_path,
            "structure": {"kind": kind, "names": names},
            "modes": modes,
            "layers": bool(layers),
            "imports": imports,
        }
        runs = _runner.run_all(backends, spec, directory, timeout, jobs)
    errors = [{"backend": r.backend, "message": r.error} for r in runs if r.error]
    results = {r.backend: r.result for r in runs if r.result is not None}
    for result in results.values():
        result[0]["modes"] = modes
    if reference_data is not None:
        reference_name = os.fspath(reference)
        results_ref = reference_data
    else:
        reference_name = backends[0]
        results_ref = results.get(backends[0])
    comparisons = []
    if results_ref is not None:
        for backend in backends:
            if backend in results and (
                reference_data is not None or backend != reference_name
            ):
                comparisons.extend(
                    _judge.compare(
                        modes, results_ref, results[backend], backend, atol, rtol
                    )
                )
    first = results.get(backends[0]) or next(iter(results.values()), None)
    non_portable = first[0]["non_portable"] if first else []
    notes = []
    for result in results.values():
        notes.extend(n for n in result[0]["notes"] if n not in notes)
    seconds = time.perf_counter() - start
    report = _report.BackendReport(
        backends=backends,
        reference=reference_name,
        modes=modes,
        comparisons=comparisons,
        non_portable=non_portable,
        errors=errors,
        notes=notes,
        timings={r.backend: r.seconds for r in runs},
        seconds=seconds,
        results=results,
        tolerances={"atol": atol, "rtol": rtol},
    )
    _runner.progress(f"{report.verdict()} in {seconds:.1f} s")
    return report


def assert_same_on_backends(model, inputs, **kwargs):
    """Asserts that a model computes the same on every backend, in a test.

    Takes the arguments of `compare_backends`.

    Args:
        model: a `keras.Model` or the path of a `.keras` file.
        inputs: the inputs (see `compare_backends`).
        **kwargs: `backends`, `modes`, `layers`, `atol`, `rtol`, `imports`,
            `reference`, `timeout`, `jobs`, as in `compare_backends`.

    Returns:
        The report, when it passed.

    Raises:
        AssertionError: with the report's table as its message, when a
            value differs beyond tolerance or a backend could not run; or
            saying that nothing would be compared, with one backend and no
            `reference` (raised before anything runs).

    Example:

    >>> from keras_reg.testing import assert_same_on_backends
    >>> def test_my_model_is_portable(tmp_path):  # doctest: +SKIP
    ...     assert_same_on_backends(build_model(), x, modes=("inference",))
    """
    backends = kwargs.get("backends")
    if backends is None:
        backends = _runner.installed_backends()
    elif isinstance(backends, str):
        backends = [b for b in backends.split(",") if b.strip()]
    if kwargs.get("reference") is None and len(list(backends)) == 1:
        raise AssertionError(
            f"Nothing would be compared: one backend ({list(backends)[0]}) "
            "and no `reference`. Install a second backend, or compare with "
            "outputs recorded elsewhere (`reference=folder`)."
        )
    report = compare_backends(model, inputs, **kwargs)
    if report.compared == 0 and report.passed:
        raise AssertionError(f"Nothing was compared.\n{report}")
    if not report.passed:
        raise AssertionError(str(report))
    return report
