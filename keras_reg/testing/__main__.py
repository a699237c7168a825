"""`python -m keras_reg.testing` and the console script `keras-reg-check`.

    keras-reg-check MODEL.keras INPUTS.npz [--backends tensorflow,torch,jax]
        [--modes inference,training,gradients] [--atol A] [--rtol R]
        [--import MODULE]... [--json PATH] [--save-outputs DIR]
        [--reference DIR] [--no-layers]

Prints the table on stdout (progress lines and errors on stderr). Exit
status: 0 every value within tolerance, 1 a difference, 2 it could not run
(bad arguments, a missing file, a backend error).
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
    return parser


def main(argv=None, prog=None):
    """Runs the check; returns the exit status."""
    args = _parser(prog).parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # This process only reads files and starts the subprocesses; Keras still
    # imports a backend, so take the quickest installed one to import.
    if "KERAS_BACKEND" not in os.environ:
        for backend in ("jax", "torch", "tensorflow"):
            if importlib.util.find_spec(backend) is not None:
                os.environ["KERAS_BACKEND"] = backend
                break
    from keras_reg.testing._compare import compare_backends

    try:
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
        )
    except (ValueError, TypeError, OSError) as error:
        print(f"keras-reg-check: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    print(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report.to_dict(), f, indent=1)
    if args.save_outputs and (report.passed or not report.errors):
        report.save_outputs(args.save_outputs)
    if report.errors:
        return EXIT_ERROR
    return EXIT_PASSED if report.passed else EXIT_DIFFERENT


def console():
    """The `keras-reg-check` entry point."""
    sys.exit(main())


if __name__ == "__main__":
    sys.exit(main(prog="python -m keras_reg.testing"))
