"""`make demo`: runs the example models and prints their summary.

make demo                  # TensorFlow
make demo BACKEND=jax      # or torch
"""

import sys

from examples import digits_dropout


def main(argv=None):
    results = digits_dropout.main(argv)
    plain, dropped = results
    print(
        f"\nWith InvertedDropout({dropped['rate']}), validation loss "
        f"{plain['val_loss']:.3f} -> {dropped['val_loss']:.3f}, validation "
        f"accuracy {plain['val_acc']:.3f} -> {dropped['val_acc']:.3f}."
    )


if __name__ == "__main__":
    main(sys.argv[1:])
