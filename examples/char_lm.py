"""A character-level language model that overfits, and what regularization
does about it.

The text is `pydoc_data.topics` (the help topics that ship with CPython): a
small slice for training (8,000 characters) and the next 4,000 for
validation. Three models share the embedding, a wide (256-unit) recurrent
layer and the softmax head, and train for 30 epochs:

- `char_lstm`: Keras' `LSTM` without regularization. With this much capacity
  for this little text it memorizes the training slice: its validation loss
  reaches a minimum and turns up while its training loss keeps falling.
- `char_variational`: `VariationalLSTM` with input, recurrent and output
  dropout and weight drop, all masks drawn once per sequence.
- `char_layer_norm`: `LayerNormLSTM` with the same regularization.

Reported for each: the best validation bits per character (lower is better)
and the epoch it was reached, the last epoch's, and whether the model
overfit. The verdicts are computed from the run, whatever they say.

    python examples/char_lm.py
    KERAS_BACKEND=torch python examples/char_lm.py --epochs 30 --units 256
"""

import argparse
import math
import os
import sys

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras_reg  # noqa: E402
from examples._common import (  # noqa: E402
    deterministic,
    fit_progress,
    markdown_table,
    pyplot,
    save_figure,
)

SEQ_LEN = 64
# (0.3's demo: 16,000 and 8,000 characters, 384 units, 20 epochs; the same
# story at about 40% of the CPU time.)
TRAIN_CHARS = 8_000
VAL_CHARS = 4_000
UNITS = 256
EPOCHS = 30
BATCH_SIZE = 16
LEARNING_RATE = 6e-3
REGULARIZATION = {
    "dropout": 0.1,
    "recurrent_dropout": 0.2,
    "output_dropout": 0.2,
    "weight_dropout": 0.2,
}
KINDS = ("lstm", "variational", "layer_norm")
# A rise of the validation loss smaller than this (bits/char) after its best
# epoch is noise, not overfitting.
OVERFIT_MARGIN = 0.01


def load_text(chars=TRAIN_CHARS + VAL_CHARS):
    """The first `chars` characters of the CPython help topics, in a fixed
    order, and the vocabulary over the whole text."""
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[key] for key in sorted(topics))
    vocab = sorted(set(text))
    return text[:chars], vocab


def windows(text, vocab, seq_len=SEQ_LEN):
    """Non-overlapping `(input, next-character target)` windows."""
    index = {c: i for i, c in enumerate(vocab)}
    ids = np.array([index[c] for c in text], dtype="int32")
    n = (len(ids) - 1) // seq_len
    x = ids[: n * seq_len].reshape(n, seq_len)
    y = ids[1 : n * seq_len + 1].reshape(n, seq_len)
    return x, y


def build_model(kind, vocab_size, units=UNITS, seed=0):
    inputs = keras.Input((None,), dtype="int32", name="chars")
    x = keras.layers.Embedding(vocab_size, 32)(inputs)
    if kind == "lstm":
        x = keras.layers.LSTM(units, return_sequences=True)(x)
    elif kind == "variational":
        x = keras_reg.layers.VariationalLSTM(
            units, return_sequences=True, seed=seed, **REGULARIZATION
        )(x)
    elif kind == "layer_norm":
        x = keras_reg.layers.LayerNormLSTM(
            units, return_sequences=True, seed=seed, **REGULARIZATION
        )(x)
    else:
        raise ValueError(f"Unknown model kind: {kind!r}")
    outputs = keras.layers.Dense(vocab_size, name="logits")(x)
    return keras.Model(inputs, outputs, name=f"char_{kind}")


def bits_per_char(loss):
    return loss / math.log(2.0)


def curve_facts(history):
    """What the loss curves say: the best validation bits/char and its
    epoch (from 1), the last epoch's, and whether the model overfit: its
    validation loss rose after the best epoch (by more than
    `OVERFIT_MARGIN`) while its training loss fell."""
    val = [bits_per_char(v) for v in history["val_loss"]]
    train = [bits_per_char(v) for v in history["loss"]]
    best = int(np.argmin(val))
    last = len(val) - 1
    rose = val[last] > val[best] + OVERFIT_MARGIN
    overfit = rose and train[last] < train[best]
    return {
        "best_val_bpc": val[best],
        "best_epoch": best + 1,
        "last_val_bpc": val[last],
        "train_bpc_at_best": train[best],
        "last_train_bpc": train[last],
        "epochs": last + 1,
        "val_rose": rose,
        "overfit": overfit,
    }


def train(kind, data, vocab, epochs, units=UNITS, progress=True, seed=0):
    x_train, y_train, x_val, y_val = data
    keras.utils.set_random_seed(seed)
    model = build_model(kind, len(vocab), units=units, seed=seed)
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE, clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    verbose, callbacks = fit_progress(f"{model.name}:", epochs, progress)
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=epochs,
        batch_size=BATCH_SIZE,
        verbose=verbose,
        callbacks=callbacks,
    )
    return {
        "model": model.name,
        "kind": kind,
        "history": history.history,
        **curve_facts(history.history),
        "keras_model": model,
    }


def generate(model, vocab, prompt="The ", length=200, temperature=0.6, seed=0):
    """Samples `length` characters after `prompt`, one at a time, from a
    window of the last `SEQ_LEN` characters (fixed shape: compiled once)."""
    index = {c: i for i, c in enumerate(vocab)}
    rng = np.random.default_rng(seed)
    ids = [index[" "]] * SEQ_LEN + [index[c] for c in prompt]
    for _ in range(length):
        window = np.array([ids[-SEQ_LEN:]], dtype="int32")
        logits = np.asarray(model.predict_on_batch(window))[0, -1].astype("float64")
        p = np.exp((logits - logits.max()) / temperature)
        ids.append(int(rng.choice(len(vocab), p=p / p.sum())))
    return prompt + "".join(vocab[i] for i in ids[SEQ_LEN + len(prompt) :])


def run(
    epochs=EPOCHS,
    train_chars=TRAIN_CHARS,
    val_chars=VAL_CHARS,
    units=UNITS,
    kinds=KINDS,
    progress=True,
    sample_length=200,
    seed=0,
):
    text, vocab = load_text(train_chars + val_chars)
    x_train, y_train = windows(text[:train_chars], vocab)
    x_val, y_val = windows(text[train_chars:], vocab)
    data = (x_train, y_train, x_val, y_val)
    results = [
        train(kind, data, vocab, epochs, units, progress, seed) for kind in kinds
    ]
    best = min(results, key=lambda r: r["last_val_bpc"])
    sample = generate(best["keras_model"], vocab, length=sample_length)
    for r in results:
        del r["keras_model"]
    return {
        "results": results,
        "best": best["model"],
        "sample": sample,
        "settings": {
            "epochs": epochs,
            "train_chars": train_chars,
            "val_chars": val_chars,
            "units": units,
            "seed": seed,
            "backend": keras.backend.backend(),
        },
    }


def format_table(outcome):
    return markdown_table(
        [
            "model",
            "best val bits/char",
            "best epoch",
            "last val bits/char",
            "last train bits/char",
            "overfit",
        ],
        [
            [
                r["model"],
                f"{r['best_val_bpc']:.3f}",
                f"{r['best_epoch']}/{r['epochs']}",
                f"{r['last_val_bpc']:.3f}",
                f"{r['last_train_bpc']:.3f}",
                "yes" if r["overfit"] else "no",
            ]
            for r in outcome["results"]
        ],
    )


def _overfit_sentence(r):
    if r["overfit"]:
        return (
            f"`{r['model']}` overfits: its validation bits/char is lowest at "
            f"epoch {r['best_epoch']} ({r['best_val_bpc']:.3f}) and rises to "
            f"{r['last_val_bpc']:.3f} by epoch {r['epochs']}, while its "
            f"training bits/char falls from {r['train_bpc_at_best']:.3f} to "
            f"{r['last_train_bpc']:.3f}."
        )
    if r["best_epoch"] == r["epochs"]:
        return (
            f"`{r['model']}` does not overfit in {r['epochs']} epochs: its "
            f"validation bits/char is still falling ({r['best_val_bpc']:.3f} at "
            "the last epoch)."
        )
    if r["val_rose"]:
        return (
            f"`{r['model']}`'s validation bits/char is lowest at epoch "
            f"{r['best_epoch']} ({r['best_val_bpc']:.3f}) and rises to "
            f"{r['last_val_bpc']:.3f} by epoch {r['epochs']}, but its training "
            "loss does not fall meanwhile: not the overfitting pattern."
        )
    return (
        f"`{r['model']}` reaches its best validation bits/char at epoch "
        f"{r['best_epoch']} ({r['best_val_bpc']:.3f}) and is at "
        f"{r['last_val_bpc']:.3f} at epoch {r['epochs']}, within "
        f"{OVERFIT_MARGIN} of its best: no clear sign of overfitting."
    )


def _comparison_sentence(r, base, name):
    diff = r["best_val_bpc"] - base["best_val_bpc"]
    if diff < 0:
        verdict = f"{-diff:.3f} below the plain LSTM's: {name} helps here"
    elif diff > 0:
        verdict = f"{diff:.3f} above the plain LSTM's: {name} does not help"
        verdict += " in this run"
    else:
        verdict = f"equal to the plain LSTM's: {name} makes no difference here"
    return (
        f"`{r['model']}` reaches {r['best_val_bpc']:.3f} bits/char at best "
        f"(epoch {r['best_epoch']}), {verdict} "
        f"({base['best_val_bpc']:.3f} at epoch {base['best_epoch']})."
    )


def verdicts(outcome):
    """Sentences computed from the curves: does the plain LSTM overfit, and
    does each regularized model reach a lower best validation bits/char?"""
    by_kind = {r["kind"]: r for r in outcome["results"]}
    settings = outcome["settings"]
    lines = [
        f"Backend {settings['backend']}, seed {settings['seed']}, "
        f"{settings['train_chars']:,} training and {settings['val_chars']:,} "
        f"validation characters, {settings['units']} units, "
        f"{settings['epochs']} epochs."
    ]
    lines += [_overfit_sentence(r) for r in outcome["results"]]
    base = by_kind.get("lstm")
    if base is not None:
        names = {
            "variational": "shared-mask dropout with weight drop",
            "layer_norm": "LayerNorm with the same regularization",
        }
        for kind, name in names.items():
            if kind in by_kind:
                lines.append(_comparison_sentence(by_kind[kind], base, name))
    return lines


def plot(outcome, output_dir):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for r in outcome["results"]:
        val = [bits_per_char(v) for v in r["history"]["val_loss"]]
        train = [bits_per_char(v) for v in r["history"]["loss"]]
        epochs = np.arange(1, len(val) + 1)
        (line,) = ax.plot(epochs, val, marker="o", ms=3, label=f"{r['model']} val")
        color = line.get_color()
        ax.plot(epochs, train, "--", color=color, label=f"{r['model']} train")
        # Behind the lines (zorder), hollow: the curve stays visible through it.
        ax.plot(
            r["best_epoch"],
            r["best_val_bpc"],
            "*",
            ms=14,
            mfc="none",
            mec=color,
            mew=1.5,
            zorder=1,
        )
    plain = next((r for r in outcome["results"] if r["kind"] == "lstm"), None)
    if plain is not None and plain["overfit"]:
        ax.axvline(plain["best_epoch"], color="grey", ls=":", lw=1.2)
        ax.annotate(
            f"{plain['model']} overfits after epoch {plain['best_epoch']}:\n"
            "validation loss rises, training loss falls",
            xy=(plain["best_epoch"], plain["best_val_bpc"]),
            xytext=(0, 60),
            textcoords="offset points",
            ha="center",
            fontsize=8,
            bbox={"boxstyle": "round", "fc": "white", "ec": "grey"},
            arrowprops={"arrowstyle": "->", "color": "grey"},
        )
    last = max(len(r["history"]["val_loss"]) for r in outcome["results"])
    step = max(1, -(-last // 10))  # at most about ten ticks, the last one last
    ax.set_xticks(sorted({1, *range(step, last + 1, step), last}))
    ax.set_xlim(0.5, last + 0.5)
    ax.set_xlabel("epoch")
    ax.set_ylabel("bits per character")
    ax.set_title(
        f"Character LM, {outcome['settings']['train_chars']:,} training characters"
        f" ({outcome['settings']['backend']}); stars: best validation epoch",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return save_figure(fig, "char_lm_bpc.png", output_dir)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--train-chars", type=int, default=TRAIN_CHARS)
    parser.add_argument("--val-chars", type=int, default=VAL_CHARS)
    parser.add_argument("--units", type=int, default=UNITS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default="demo_output")
    args = parser.parse_args(argv)
    deterministic()  # as in `make demo`
    outcome = run(
        args.epochs,
        args.train_chars,
        args.val_chars,
        args.units,
        seed=args.seed,
    )
    print(f"\nbackend: {keras.backend.backend()}")
    print(format_table(outcome))
    print("", *verdicts(outcome), sep="\n")
    print(f"\nsample from {outcome['best']}:\n{outcome['sample']}\n")
    print("figure:", plot(outcome, args.output_dir))
    return outcome


if __name__ == "__main__":
    main()
