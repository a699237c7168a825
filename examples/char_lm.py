"""A character-level language model on the text of Python's documentation.

The text is `pydoc_data.topics` (the help topics that ship with CPython).
Three models with the same embedding, 128-unit recurrent layer and softmax
head: Keras' `LSTM` without regularization, `VariationalLSTM` with input,
recurrent and output dropout and weight drop (masks shared across time), and
`LayerNormLSTM` with the same regularization. Reported: validation
bits per character (lower is better) and a sample of generated text.

    python examples/char_lm.py --epochs 8
    KERAS_BACKEND=torch python examples/char_lm.py --chars 400000
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
    EpochProgress,
    markdown_table,
    pyplot,
    save_figure,
)

SEQ_LEN = 64
REGULARIZATION = {
    "dropout": 0.1,
    "recurrent_dropout": 0.2,
    "output_dropout": 0.2,
    "weight_dropout": 0.2,
}


def load_text(chars=200_000):
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


def build_model(kind, vocab_size, units=128, seed=0):
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


def train(kind, data, vocab, epochs, progress=True):
    x_train, y_train, x_val, y_val = data
    keras.utils.set_random_seed(0)
    model = build_model(kind, len(vocab))
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3, clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    callbacks = [EpochProgress(f"{model.name}:", epochs)] if progress else []
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=epochs,
        batch_size=32,
        verbose=0,
        callbacks=callbacks,
    )
    val_loss = model.evaluate(x_val, y_val, verbose=0, batch_size=64)
    return {
        "model": model.name,
        "kind": kind,
        "val_bpc": bits_per_char(float(val_loss)),
        "history": history.history,
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
    epochs=8,
    chars=200_000,
    kinds=("lstm", "variational", "layer_norm"),
    progress=True,
    sample_length=200,
):
    text, vocab = load_text(chars)
    split = int(len(text) * 0.9)
    x_train, y_train = windows(text[:split], vocab)
    x_val, y_val = windows(text[split:], vocab)
    data = (x_train, y_train, x_val, y_val)
    results = [train(kind, data, vocab, epochs, progress) for kind in kinds]
    best = min(results, key=lambda r: r["val_bpc"])
    sample = generate(best["keras_model"], vocab, length=sample_length)
    for r in results:
        del r["keras_model"]
    return {"results": results, "best": best["model"], "sample": sample}


def format_table(outcome):
    return markdown_table(
        ["model", "val bits/char", "best epoch val bits/char"],
        [
            [
                r["model"],
                f"{r['val_bpc']:.3f}",
                f"{bits_per_char(min(r['history']['val_loss'])):.3f}",
            ]
            for r in outcome["results"]
        ],
    )


def plot(outcome, output_dir):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in outcome["results"]:
        bpc = [bits_per_char(v) for v in r["history"]["val_loss"]]
        train_bpc = [bits_per_char(v) for v in r["history"]["loss"]]
        epochs = np.arange(1, len(bpc) + 1)
        (line,) = ax.plot(epochs, bpc, marker="o", label=f"{r['model']} val")
        ax.plot(
            epochs, train_bpc, "--", color=line.get_color(), label=f"{r['model']} train"
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("bits per character")
    ax.set_title(f"Character LM on CPython's help topics ({keras.backend.backend()})")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, "char_lm_bpc.png", output_dir)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--chars", type=int, default=200_000)
    parser.add_argument("--output-dir", default="demo_output")
    args = parser.parse_args(argv)
    outcome = run(args.epochs, args.chars)
    print(f"\nbackend: {keras.backend.backend()}")
    print(format_table(outcome))
    print(f"\nsample from {outcome['best']}:\n{outcome['sample']}\n")
    print("figure:", plot(outcome, args.output_dir))
    return outcome


if __name__ == "__main__":
    main()
