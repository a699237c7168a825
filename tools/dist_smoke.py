"""Trains one small model with an installed keras_reg (`make check-dist`).

Run by tools/check_dist.sh in a fresh virtual environment outside the
clone, once per backend (KERAS_BACKEND): it fails unless keras_reg is
imported from that environment, a model with a sequence layer and a
dropout layer trains, saves and loads as `.keras`, and `mc_predict` runs.
"""

import os
import pathlib
import sys
import tempfile

import keras
import numpy as np

import keras_reg
from keras_reg import layers
from keras_reg.inference import mc_predict

installed = pathlib.Path(keras_reg.__file__).resolve()
if not installed.is_relative_to(pathlib.Path(sys.prefix).resolve()):
    raise SystemExit(f"keras_reg was imported from {installed}, not from {sys.prefix}")

rng = np.random.default_rng(0)
x = rng.normal(size=(32, 6, 3)).astype("float32")
y = x.sum(axis=(1, 2))[:, None]
model = keras.Sequential(
    [
        keras.Input((6, 3)),
        layers.VariationalLSTM(8, dropout=0.2, recurrent_dropout=0.2, seed=1),
        layers.InvertedDropout(0.2, seed=2),
        keras.layers.Dense(1),
    ]
)
model.compile(optimizer="adam", loss="mse")
history = model.fit(x, y, batch_size=8, epochs=3, verbose=0)
losses = history.history["loss"]
if not np.isfinite(losses).all():
    raise SystemExit(f"the loss is not finite: {losses}")
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
np.testing.assert_allclose(
    loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5
)
mean, std = mc_predict(model, x, samples=4, seed=0)
if mean.shape != (32, 1) or not (std > 0).any():
    raise SystemExit(f"mc_predict: mean {mean.shape}, std max {std.max()}")
print(
    f"{keras.backend.backend()}: keras_reg {keras_reg.__version__} from "
    f"{installed.parent}, keras {keras.__version__}, loss "
    f"{losses[0]:.3f} -> {losses[-1]:.3f}, save/load and mc_predict ok"
)
