"""The backend-switch check of `make demo`: the demo's character model on
every installed backend, in inference, training and gradients modes.

    python -m examples.backend_check        # prints the table

`keras_reg.testing.compare_backends` runs the model in one subprocess per
backend and compares every layer's output; keras_reg's portable masks make
even the training-mode outputs and gradients agree.
"""

import os
import sys
import tempfile
import time

import keras

from examples import char_lm
from keras_reg.testing import compare_backends

MODES = ("inference", "training", "gradients")


def run(units=char_lm.UNITS, kind="layer_norm", batch=8):
    """Checks a freshly built `char_lm` model; returns the report and the
    wall time in seconds."""
    text, vocab = char_lm.load_text(batch * char_lm.SEQ_LEN + 1)
    x, _ = char_lm.windows(text, vocab)
    model = char_lm.build_model(kind, len(vocab), units=units)
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, f"char_{kind}.keras")
        model.save(path)
        start = time.perf_counter()
        report = compare_backends(path, x[:batch], modes=MODES)
    return report, time.perf_counter() - start


def section(report, seconds):
    """The Markdown section of `summary.md`."""
    return "\n".join(
        [
            "## backend check",
            "",
            f"`keras_reg.testing.compare_backends` on the character model "
            f"({seconds:.0f} s):",
            "",
            "```",
            str(report),
            "```",
            "",
        ]
    )


def append_to_summary(path, units=char_lm.UNITS):
    """Runs the check and appends its section to the summary at `path`."""
    report, seconds = run(units=units)
    print(f"\n=== backend check ({keras.backend.backend()} runs the demo) ===")
    print(report)
    with open(path, "a") as f:
        f.write("\n" + section(report, seconds))
    return report


def main(argv=None):
    del argv
    report, seconds = run()
    print(report)
    print(f"{seconds:.1f} s")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
