"""What the examples share: training a digits classifier, a progress bar
over epochs, figures, tables, deterministic runs."""

import os
import sys

import keras

OUTPUT_DIR = "demo_output"


class EpochProgress(keras.callbacks.Callback):
    """One progress bar per model, advanced at each epoch end, with the
    training and validation loss."""

    def __init__(self, title, epochs):
        super().__init__()
        self.title = title
        self.epochs = epochs

    def on_train_begin(self, logs=None):
        print(self.title, flush=True)
        self.bar = keras.utils.Progbar(
            self.epochs, unit_name="epoch", stateful_metrics=["loss", "val_loss"]
        )

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        values = [(k, logs[k]) for k in ("loss", "val_loss") if k in logs]
        self.bar.update(epoch + 1, values=values)


def fit_progress(title, epochs, progress=True):
    """`(verbose, callbacks)` for `model.fit`: one progress bar per model on a
    terminal; Keras' one line per epoch (`verbose=2`) when stdout is
    redirected; nothing without `progress`."""
    if not progress:
        return 0, []
    if sys.stdout.isatty():
        return 0, [EpochProgress(title, epochs)]
    print(title, flush=True)
    return 2, []


def deterministic(threads=1):
    """Makes a run repeat its numbers on one machine: fixed thread counts,
    and TensorFlow's op determinism or torch's deterministic algorithms.
    Call it before the first model is built. The figures of the docs come
    from such runs (`python -m examples.demo`)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # the runtime has started: the counts are set
            pass
    elif backend == "torch":
        import torch

        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(True)
    # JAX on the CPU: XLA's kernels are deterministic for a fixed program.


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, name, output_dir=OUTPUT_DIR):
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, name)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    pyplot().close(fig)
    return path


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def train_classifier(model, data, epochs, learning_rate=2e-3, progress=True):
    """Fits a softmax classifier with Adam and reports accuracy and loss on
    the training and validation sets, both evaluated in inference mode (so
    the gap between them is comparable), and the fit's history."""
    x_train, x_val, y_train, y_val = data
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    verbose, callbacks = fit_progress(f"{model.name}:", epochs, progress)
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=epochs,
        batch_size=32,
        verbose=verbose,
        callbacks=callbacks,
    )
    train_loss, train_acc = model.evaluate(x_train, y_train, verbose=0)
    val_loss, val_acc = model.evaluate(x_val, y_val, verbose=0)
    return {
        "model": model.name,
        "train_acc": float(train_acc),
        "val_acc": float(val_acc),
        "train_loss": float(train_loss),
        "val_loss": float(val_loss),
        "history": history.history,
    }
