"""Deep Bayesian active learning on scikit-learn's 8x8 digits: which points
to label next, chosen by Monte Carlo dropout, against labelling at random.

After Gal, Islam & Ghahramani (2017), "Deep Bayesian Active Learning with
Image Data" (MNIST; their Table 1: BALD needs about 145 labelled images to
reach 10% test error and 335 for 5%, random acquisition 255 and 835).
Here, on the 1,797 digits (500 held out for testing, the rest the pool):

- a small CNN with dropout (`InvertedDropout` after the convolutions and
  in the dense head), re-initialized to the same initial weights and
  retrained on the labelled set after every acquisition (a fixed budget of
  gradient steps, the labelled set resampled to fill it);
- 20 labelled images to start, two per class, the same for every method;
- acquisitions of 10 images from the pool, scored by
  `keras_reg.inference.acquire` over 20 Monte Carlo dropout samples:
  BALD, predictive entropy, variation ratio, BatchBALD, or at random;
- the test error (the model in inference mode) against the number of
  labels, and the labels each method needs to reach two error levels.

    python -m examples.active_learning            # the demo's short run
    python -m examples.active_learning --full     # 5 seeds, every method

The full sweep keeps each (method, seed) run's curve in
`<output-dir>/active_learning/*.json` and reuses it when run again.
"""

import argparse
import json
import os
import sys
import time

import keras
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras_reg  # noqa: E402
from examples._common import (  # noqa: E402
    OUTPUT_DIR,
    deterministic,
    markdown_table,
    pyplot,
    save_figure,
)
from keras_reg._acquisition import acquire  # noqa: E402

METHODS = ("bald", "entropy", "variation_ratio", "batchbald", "random")
LEVELS = (0.10, 0.05)  # the test errors of the table, as in the paper
# Gal, Islam & Ghahramani 2017, Table 1 (MNIST), labels to reach 10% / 5%.
PAPER = {"bald": (145, 335), "random": (255, 835)}

# The full sweep, and the demo's short run (one seed, two methods).
FULL = {
    "seeds": (0, 1, 2, 3, 4),
    "methods": METHODS,
    "max_labels": 300,
}
# The demo's run: one seed, BALD against random, to 100 labels (every
# (re)training 100 gradient steps instead of 200).
SHORT = {
    "seeds": (0,),
    "methods": ("bald", "random"),
    "max_labels": 100,
    "steps": 100,
}

INITIAL_PER_CLASS = 2
ACQUIRE = 10
SAMPLES = 20
STEPS = 200  # gradient steps per (re)training
BATCH = 32
TEST_SIZE = 500


def load_split(seed):
    """Test images, the pool, and the initial labelled indices into the
    pool (two per class), for one seed."""
    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    y = digits.target.astype("int32")
    x_pool, x_test, y_pool, y_test = train_test_split(
        x, y, test_size=TEST_SIZE, random_state=seed, stratify=y
    )
    rng = np.random.default_rng(seed)
    initial = np.concatenate(
        [
            rng.choice(np.flatnonzero(y_pool == c), INITIAL_PER_CLASS, replace=False)
            for c in range(10)
        ]
    )
    return x_pool, y_pool, x_test, y_test, initial


def build_model(seed=0):
    """Conv-ReLU x2, max pooling, dropout, dense-ReLU, dropout, softmax:
    the paper's architecture, scaled to 8x8 images."""
    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras_reg.layers.InvertedDropout(0.25, seed=seed)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(128, activation="relu")(x)
    x = keras_reg.layers.InvertedDropout(0.5, seed=seed + 1)(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="digit")(x)
    return keras.Model(inputs, outputs, name="al_cnn")


class _Learner:
    """One model, compiled once, reset to its initial weights and its
    optimizer's initial state before every training (no retracing)."""

    def __init__(self, seed, steps=STEPS):
        self.steps = steps
        keras.utils.set_random_seed(seed)
        self.model = build_model(seed)
        self.model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss="sparse_categorical_crossentropy",
        )
        self.model.optimizer.build(self.model.trainable_variables)
        self.weights = self.model.get_weights()
        self.optimizer_state = [
            keras.ops.convert_to_numpy(v) for v in self.model.optimizer.variables
        ]
        self.rng = np.random.default_rng(seed)

    def train(self, x, y):
        self.model.set_weights(self.weights)
        for v, value in zip(
            self.model.optimizer.variables, self.optimizer_state, strict=True
        ):
            v.assign(value)
        # A fixed number of full batches: the same shapes every round.
        index = self.rng.choice(len(x), self.steps * BATCH, replace=True)
        self.model.fit(x[index], y[index], batch_size=BATCH, epochs=1, verbose=0)

    def error(self, x, y):
        probs = self.model.predict(x, batch_size=500, verbose=0)
        return float((np.argmax(probs, -1) != y).mean())


def run_one(method, seed, max_labels, progress=False, steps=STEPS):
    """One active-learning run: the test error after each acquisition
    (`steps` gradient steps per training)."""
    x_pool, y_pool, x_test, y_test, labelled = load_split(seed)
    learner = _Learner(seed, steps)
    labelled = list(labelled)
    unlabelled = np.setdiff1d(np.arange(len(x_pool)), labelled)
    labels, errors = [], []
    start = time.perf_counter()
    round_ = 0
    while True:
        learner.train(x_pool[labelled], y_pool[labelled])
        labels.append(len(labelled))
        errors.append(learner.error(x_test, y_test))
        if progress:
            print(
                f"  {method} seed {seed}: {labels[-1]} labels, test error "
                f"{errors[-1]:.3f}",
                flush=True,
            )
        if len(labelled) + ACQUIRE > max_labels:
            break
        picked = acquire(
            learner.model,
            x_pool[unlabelled],
            ACQUIRE,
            method=method,
            samples=SAMPLES,
            seed=seed * 1000 + round_,
            batch_size=256,
        )
        labelled.extend(unlabelled[picked].tolist())
        unlabelled = np.delete(unlabelled, picked)
        round_ += 1
    return {
        "method": method,
        "seed": seed,
        "labels": labels,
        "errors": errors,
        "seconds": time.perf_counter() - start,
        "backend": keras.backend.backend(),
        "steps": steps,
    }


def labels_to_reach(run, level):
    """The first number of labels at which the test error is <= `level`,
    or None."""
    for labels, error in zip(run["labels"], run["errors"], strict=True):
        if error <= level:
            return labels
    return None


def run(
    seeds=SHORT["seeds"],
    methods=SHORT["methods"],
    max_labels=SHORT["max_labels"],
    progress=True,
    cache_dir=None,
    steps=SHORT["steps"],
):
    """Every (method, seed) run, `steps` gradient steps per training; with
    `cache_dir`, each run's curve is read from (or written to) a JSON file
    there."""
    runs = []
    for seed in seeds:  # seed-major: an interrupted sweep has whole seeds
        for method in methods:
            path = None
            if cache_dir is not None:
                name = f"{keras.backend.backend()}_{method}_{seed}_{max_labels}"
                if steps != STEPS:
                    name += f"_{steps}steps"
                name += ".json"
                path = os.path.join(cache_dir, name)
                if os.path.exists(path):
                    with open(path) as f:
                        runs.append(json.load(f))
                    continue
            result = run_one(method, seed, max_labels, progress, steps)
            if progress:
                print(
                    f"{method} seed {seed}: {result['seconds']:.1f} s, final "
                    f"error {result['errors'][-1]:.3f}",
                    flush=True,
                )
            if path is not None:
                os.makedirs(cache_dir, exist_ok=True)
                with open(path, "w") as f:
                    json.dump(result, f)
            runs.append(result)
    return {
        "runs": runs,
        "methods": list(methods),
        "max_labels": max_labels,
        "steps": steps,
    }


def sweep(output_dir=OUTPUT_DIR, progress=True, methods=METHODS, seeds=FULL["seeds"]):
    """The full sweep: every method, five seeds, up to 300 labels."""
    return run(
        seeds,
        methods,
        FULL["max_labels"],
        progress,
        cache_dir=os.path.join(output_dir, "active_learning"),
        steps=STEPS,
    )


def summary(outcome):
    """Per method and level: the labels needed over seeds (None where a
    seed never reached the level)."""
    table = {}
    for method in outcome["methods"]:
        runs = [r for r in outcome["runs"] if r["method"] == method]
        table[method] = {
            level: [labels_to_reach(r, level) for r in runs] for level in LEVELS
        }
    return table


def _cell(values, max_labels):
    reached = [v for v in values if v is not None]
    if not reached:
        return f"> {max_labels} (0/{len(values)})"
    text = f"{np.mean(reached):.0f} ± {np.std(reached):.0f}"
    if len(reached) == 1:
        text = f"{reached[0]}"
    if len(reached) < len(values):
        text += f" ({len(reached)}/{len(values)} seeds; others > {max_labels})"
    return text


def format_table(outcome):
    """Labels needed to reach each error level: mean ± standard deviation
    over seeds, next to the paper's MNIST numbers."""
    table = summary(outcome)
    rows = []
    for method in outcome["methods"]:
        paper = PAPER.get(method)
        seeds = sum(r["method"] == method for r in outcome["runs"])
        rows.append(
            [
                method,
                str(seeds),
                *(_cell(table[method][lv], outcome["max_labels"]) for lv in LEVELS),
                *((str(p) for p in paper) if paper else ("-", "-")),
            ]
        )
    header = ["method", "seeds"]
    header += [f"labels to {lv:.0%} error (digits)" for lv in LEVELS]
    header += [f"paper, MNIST, {lv:.0%}" for lv in LEVELS]
    return markdown_table(header, rows)


COLORS = {
    "bald": "tab:blue",
    "entropy": "tab:orange",
    "variation_ratio": "tab:green",
    "batchbald": "tab:purple",
    "random": "tab:grey",
}


def plot(outcome, output_dir=OUTPUT_DIR, name="active_learning.png"):
    """Test error against labels: the mean over seeds, the band min-max."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method in outcome["methods"]:
        runs = [r for r in outcome["runs"] if r["method"] == method]
        labels = np.asarray(runs[0]["labels"])
        errors = np.asarray([r["errors"] for r in runs])
        ax.plot(
            labels,
            errors.mean(0),
            color=COLORS[method],
            lw=2,
            label=f"{method} ({len(runs)} seeds)",
        )
        if len(runs) > 1:
            ax.fill_between(
                labels, errors.min(0), errors.max(0), color=COLORS[method], alpha=0.12
            )
    for level in LEVELS:
        ax.axhline(level, ls=":", color="black", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("labelled images")
    ax.set_ylabel("test error (500 held-out digits)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    ax.set_title(
        f"Active learning on 8x8 digits: {ACQUIRE} images per acquisition, "
        f"{SAMPLES} MC dropout samples\nmean over seeds, band: min-max "
        f"({keras.backend.backend()})",
        fontsize=10,
    )
    return save_figure(fig, name, output_dir)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--full", action="store_true", help="5 seeds, every method, 300 labels"
    )
    parser.add_argument("--methods", default=None, help="comma-separated")
    parser.add_argument("--seeds", default=None, help="comma-separated (--full)")
    parser.add_argument("--output-dir", default=OUTPUT_DIR)
    args = parser.parse_args(argv)
    deterministic()
    if args.full:
        methods = tuple(args.methods.split(",")) if args.methods else METHODS
        seeds = FULL["seeds"]
        if args.seeds:
            seeds = tuple(int(s) for s in args.seeds.split(","))
        outcome = sweep(args.output_dir, methods=methods, seeds=seeds)
    else:
        methods = tuple(args.methods.split(",")) if args.methods else SHORT["methods"]
        outcome = run(methods=methods)
    print(f"\nbackend: {keras.backend.backend()}")
    print(format_table(outcome))
    print("figure:", plot(outcome, args.output_dir))
    return outcome


if __name__ == "__main__":
    main()
