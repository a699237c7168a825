"""The examples run on every backend (tiny settings), so they cannot rot."""

import numpy as np

import keras_reg
from examples import digits_dropout


def test_digits_example_trains_both_models():
    results = digits_dropout.run(epochs=2)
    assert [r["rate"] for r in results] == [0.0, 0.5]
    for r in results:
        assert 0.0 <= r["val_acc"] <= 1.0
        assert np.isfinite(r["train_loss"]) and np.isfinite(r["val_loss"])
        assert len(r["history"]["loss"]) == 2
    table = digits_dropout.format_table(results)
    assert table.count("\n") == 3  # header, rule, two rows


def test_digits_model_places_dropout_after_hidden_layers():
    model = digits_dropout.build_model(0.5)
    dropouts = [
        layer
        for layer in model.layers
        if isinstance(layer, keras_reg.layers.InvertedDropout)
    ]
    assert [d.rate for d in dropouts] == [0.5, 0.5]
    assert model.output_shape == (None, 10)
    assert not any(
        isinstance(layer, keras_reg.layers.InvertedDropout)
        for layer in digits_dropout.build_model(0.0).layers
    )
