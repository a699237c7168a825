"""`python -m keras_reg.testing` and the console script `keras-reg-check`.

    keras-reg-check MODEL.keras INPUTS.npz [--backends tensorflow,torch,jax]
        [--modes inference,training,gradients] [--atol A] [--rtol R]
        [--import MODULE]... [--json PATH] [--save-outputs DIR]
        [--reference DIR] [--no-layers] [--timeout SECONDS] [--jobs N]

Prints the table on stdout (progress lines and errors on stderr). Exit
status: 0 every value within tolerance, 1 a difference, 2 it could not run
(bad arguments, a missing file, a backend error, a `--json` or
`--save-outputs` path that cannot be written, nothing to compare: one
backend and no `--reference`, unless `--save-outputs` was asked for). A
could-not-run names the problem on stderr, without a traceback.
"""

import argparse
import importlib.util
import json
import os
import sys

EXIT_PASSED, EXIT_DIFFERENT, EXIT_ERROR = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_ERROR)


def _parser(prog=None):
    parser = _Parser(
        prog=prog or "keras-reg-check",
        description=(
            "Runs a saved Keras model on several backends (one subprocess "
            "each) and compares its outputs, every layer's output and, on "
            "request, its gradients. Exit status: 0 within tolerance, 1 a "
            "difference, 2 it could not run."
        ),
    )
    parser.add_argument("model", metavar="MODEL.keras", help="the saved model")
    parser.add_argument(
        "inputs",
        metavar="INPUTS.npz",
        help="its inputs: keys are the input names, or arr_0, arr_1, ... in order",
    )
    parser.add_argument(
        "--backends",
        help="comma-separated, among tensorflow,torch,jax; the first is the "
        "reference (default: every installed one)",
    )
    parser.add_argument(
        "--modes",
        default="inference,training",
        help="comma-separated, among inference,training,gradients "
        "(default: inference,training)",
    )
    parser.add_argument(
        "--atol", type=float, help="absolute tolerance (default: by dtype)"
    )
    parser.add_argument(
        "--rtol", type=float, help="relative tolerance (default: by dtype)"
    )
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="a module each backend imports first (custom layers); repeatable",
    )
    parser.add_argument("--json", metavar="PATH", help="write the report as JSON")
    parser.add_argument(
        "--save-outputs",
        metavar="DIR",
        help="write the reference's outputs to DIR (for --reference elsewhere)",
    )
    parser.add_argument(
        "--reference",
        metavar="DIR",
        help="compare with outputs saved by --save-outputs (another machine)",
    )
    parser.add_argument(
        "--no-layers",
        action="store_true",
        help="compare the model's outputs only, not every layer's",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="stop a backend's subprocess after this long, an error "
        "(default: $KERAS_REG_CHECK_TIMEOUT, else 600)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="subprocesses at a time (default: $KERAS_REG_CHECK_JOBS, else one "
        "per backend up to the number of CPUs)",
    )
    return parser


def _error(message):
    print(f"keras-reg-check: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _single_backend(backends):
    """The backend's name when exactly one would run, else None."""
    if backends is None:
        names = [b for b in ("tensorflow", "torch", "jax") if _installed(b)]
    else:
        names = [b.strip() for b in backends.split(",") if b.strip()]
    # An unknown name is `compare_backends`' to report.
    known = all(n in ("tensorflow", "torch", "jax") for n in names)
    return names[0] if len(names) == 1 and known else None


def _installed(name):
    return importlib.util.find_spec(name) is not None


def _unwritable(option, path, folder=False):
    """Why `path` cannot be written, or None."""
    path = os.path.abspath(path)
    if not folder and os.path.isdir(path):
        return f"{option} {path!r} is a folder"
    if folder and os.path.exists(path) and not os.path.isdir(path):
        return f"{option} {path!r} is not a folder"
    parent = os.path.dirname(path)
    if not folder and not os.path.isdir(parent):
        return f"{option} {path!r}: no such folder {parent!r}"
    existing = path if os.path.exists(path) else parent
    while folder and not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK):
        return f"{option} {path!r} cannot be written (permission denied)"
    return None


def main(argv=None, prog=None):
    """Runs the check; returns the exit status."""
    try:
        args = _parser(prog).parse_args(argv)
    except SystemExit as done:  # --help (0) or a usage error (2)
        return done.code
    problems = []
    if args.json:
        problems.append(_unwritable("--json", args.json))
    if args.save_outputs:
        problems.append(_unwritable("--save-outputs", args.save_outputs, True))
    problems = [p for p in problems if p]
    if problems:
        return _error("; ".join(problems))
    if not args.reference and not args.save_outputs:
        single = _single_backend(args.backends)
        if single:
            return _error(
                f"nothing would be compared: one backend ({single}) and no "
                "--reference (add a backend, or --save-outputs DIR to record "
                "its outputs)"
            )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # This process only reads files and starts the subprocesses; Keras still
    # imports a backend, so take the quickest installed one to import.
    if "KERAS_BACKEND" not in os.environ:
        for backend in ("jax", "torch", "tensorflow"):
            if _installed(backend):
                os.environ["KERAS_BACKEND"] = backend
                break
    try:
        from keras_reg.testing._compare import compare_backends

        report = compare_backends(
            args.model,
            args.inputs,
            backends=args.backends,
            modes=args.modes,
            layers=not args.no_layers,
            atol=args.atol,
            rtol=args.rtol,
            imports=args.imports,
            reference=args.reference,
            timeout=args.timeout,
            jobs=args.jobs,
        )
    except (ValueError, TypeError, OSError) as error:
        return _error(str(error))
    except Exception as error:  # noqa: BLE001 - could not run: exit 2, named
        return _error(f"{type(error).__name__}: {error}")
    try:
        if args.json:
            with open(args.json, "w") as f:
                json.dump(report.to_dict(), f, indent=1)
        if args.save_outputs and not report.errors:
            report.save_outputs(args.save_outputs)
    except (OSError, ValueError) as error:
        return _error(str(error))
    print(report)
    if report.errors:
        return EXIT_ERROR
    if not report.compared and not args.save_outputs:
        return _error(
            "nothing was compared: one backend and no --reference (add a "
            "backend, or --save-outputs DIR to record the outputs)"
        )
    return EXIT_PASSED if report.passed else EXIT_DIFFERENT


def console():
    """The `keras-reg-check` entry point."""
    sys.exit(main())


if __name__ == "__main__":
    sys.exit(main(prog="python -m keras_reg.testing"))
