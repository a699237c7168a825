"""What the examples share: a progress bar over epochs, figures, tables."""

import os

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
