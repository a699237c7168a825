"""The benchmark figures. Each returns rows of `{group, figure, reference,
target, ours_ms, ref_ms, ratio}`; `run.py` runs them once per backend.

Benchmarks may import the backend (library code may not): compiled
variants use `tf.function(jit_compile=True)` and `jax.jit` directly.
"""

import keras
import numpy as np
from run import interleaved

import keras_reg
from keras_reg.layers import DropBlock2D, InvertedDropout

BACKEND = keras.backend.backend()
SHAPE = (256, 4096)


def _sync(y):
    if BACKEND == "jax":
        import jax

        jax.block_until_ready(y)
    return y


def _row(group, figure, reference, target, times):
    ours, ref = times
    return {
        "group": group,
        "figure": figure,
        "reference": reference,
        "target": target,
        "ours_ms": ours * 1e3,
        "ref_ms": ref * 1e3,
        "ratio": ours / ref,
    }


def _built(layer, shape):
    layer.build(shape)
    return layer


def _eager_forward(layer, x, training=True):
    return lambda: _sync(layer(x, training=training))


def _compiled_forward(layer, x):
    """One compiled training call of `layer`, the state threaded through."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        fn = tf.function(lambda x: layer(x, training=True), jit_compile=True)
        return lambda: fn(x)
    if BACKEND == "jax":
        import jax

        trainable = [v.value for v in layer.trainable_variables]
        state = [[v.value for v in layer.non_trainable_variables]]

        @jax.jit
        def fn(state, x):
            return layer.stateless_call(trainable, state, x, training=True)

        def step():
            y, state[0] = fn(state[0], x)
            return _sync(y)

        return step
    return None


def _compiled_forward_backward(layer, x):
    if BACKEND == "tensorflow":
        import tensorflow as tf

        @tf.function(jit_compile=True)
        def fn(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
                loss = tf.reduce_sum(y)
            return tape.gradient(loss, x)

        return lambda: fn(x)
    if BACKEND == "jax":
        import jax

        state = [[v.value for v in layer.non_trainable_variables]]

        def loss(x, state):
            y, new_state = layer.stateless_call([], state, x, training=True)
            return y.sum(), new_state

        grad = jax.jit(jax.grad(loss, has_aux=True))

        def step():
            g, state[0] = grad(x, state[0])
            return _sync(g)

        return step
    if BACKEND == "torch":
        import torch

        leaf = torch.ones(SHAPE, requires_grad=True)

        def step():
            layer(leaf, training=True).sum().backward()
            leaf.grad = None

        return step
    return None


def dropout_vs_keras():
    """Issue 3: InvertedDropout against keras.layers.Dropout."""
    x = keras.ops.ones(SHAPE)
    group = "InvertedDropout vs keras.layers.Dropout, (256, 4096), rate 0.5"
    rows = []
    for mode in ("portable", "native"):
        keras_reg.config.set_rng(mode)
        ours = _built(InvertedDropout(0.5, seed=1), SHAPE)
        ref = _built(keras.layers.Dropout(0.5), SHAPE)
        ref_seeded = _built(keras.layers.Dropout(0.5, seed=1), SHAPE)
        rows.append(
            _row(
                group,
                f"train forward, eager, {mode}",
                "Dropout(0.5)",
                "<= 1.05",
                interleaved(_eager_forward(ours, x), _eager_forward(ref, x)),
            )
        )
        rows.append(
            _row(
                group,
                f"train forward, eager, {mode}",
                "Dropout(0.5, seed=1)",
                "<= 1.05",
                interleaved(_eager_forward(ours, x), _eager_forward(ref_seeded, x)),
            )
        )
        compiled = _compiled_forward(ours, x)
        if compiled is not None:
            rows.append(
                _row(
                    group,
                    f"train forward, compiled, {mode}",
                    "Dropout(0.5)",
                    "<= 1.05",
                    interleaved(compiled, _compiled_forward(ref, x)),
                )
            )
        grad = _compiled_forward_backward(ours, x)
        if grad is not None:
            how = "eager" if BACKEND == "torch" else "compiled"
            rows.append(
                _row(
                    group,
                    f"train forward+backward, {how}, {mode}",
                    "Dropout(0.5)",
                    "<= 1.05",
                    interleaved(grad, _compiled_forward_backward(ref, x)),
                )
            )
    keras_reg.config.set_rng("portable")
    ours = _built(InvertedDropout(0.5, seed=1), SHAPE)
    identity = _built(keras.layers.Identity(), SHAPE)
    keras_dropout = _built(keras.layers.Dropout(0.5), SHAPE)
    rows.append(
        _row(
            group,
            "inference (training=False)",
            "Dropout(0.5), inference",
            "<= 1.02",
            interleaved(
                _eager_forward(ours, x, training=False),
                _eager_forward(keras_dropout, x, training=False),
                repeats=200,
            ),
        )
    )
    rows.append(
        _row(
            group,
            "inference (training=False)",
            "Identity layer",
            "<= 1.02",
            interleaved(
                _eager_forward(ours, x, training=False),
                _eager_forward(identity, x, training=False),
                repeats=200,
            ),
        )
    )
    return rows


def portable_vs_native():
    """Issue 10: the portable generator against keras.random."""
    group = "portable / native (keras.random) mask generation"
    x = keras.ops.ones(SHAPE)
    rows = []

    def layer_in(mode):
        keras_reg.config.set_rng(mode)
        return _built(InvertedDropout(0.5, seed=1), SHAPE)

    def moded(mode, fn):
        def call():
            keras_reg.config.set_rng(mode)
            return fn()

        return call

    portable, native = layer_in("portable"), layer_in("native")
    rows.append(
        _row(
            group,
            "InvertedDropout call, eager",
            "same, native",
            "<= 1.5",
            interleaved(
                moded("portable", _eager_forward(portable, x)),
                moded("native", _eager_forward(native, x)),
            ),
        )
    )
    keras_reg.config.set_rng("portable")
    compiled_portable = _compiled_forward(portable, x)
    keras_reg.config.set_rng("native")
    compiled_native = _compiled_forward(native, x)
    if compiled_portable is not None:
        # Trace each in its own mode, then time.
        keras_reg.config.set_rng("portable")
        compiled_portable()
        keras_reg.config.set_rng("native")
        compiled_native()
        rows.append(
            _row(
                group,
                "InvertedDropout call, compiled",
                "same, native",
                "<= 1.5",
                interleaved(compiled_portable, compiled_native),
            )
        )

    rng = np.random.default_rng(0)
    images = rng.normal(size=(64, 16, 16, 8)).astype("float32")
    labels = rng.integers(0, 10, size=(64,))

    def cnn(mode):
        keras_reg.config.set_rng(mode)
        inputs = keras.Input((16, 16, 8))
        h = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
        h = DropBlock2D(0.1, 3, seed=1)(h)
        h = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(h)
        h = keras.layers.GlobalAveragePooling2D()(h)
        h = InvertedDropout(0.3, seed=2)(h)
        model = keras.Model(inputs, keras.layers.Dense(10)(h))
        model.compile(
            optimizer="sgd",
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model.train_on_batch(images, labels)  # trace in this mode
        return moded(mode, lambda: model.train_on_batch(images, labels))

    rows.append(
        _row(
            group,
            "CNN train step (DropBlock2D + InvertedDropout), B=64",
            "same, native",
            "<= 1.05",
            interleaved(cnn("portable"), cnn("native"), repeats=20),
        )
    )
    keras_reg.config.set_rng("portable")
    return rows


def _rnn_step(layer, x, y):
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, keras.layers.Dense(1)(layer(inputs)))
    model.compile(optimizer="sgd", loss="mse")
    model.train_on_batch(x, y)
    return lambda: model.train_on_batch(x, y)


def _rnn_predict(layer, x):
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, layer(inputs))
    model.predict_on_batch(x)
    return lambda: model.predict_on_batch(x)


def _rnn_case():
    """The recurrent benchmarks' batch: B=64, T=100, F=32."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 100, 32)).astype("float32")
    y = rng.normal(size=(64, 1)).astype("float32")
    return x, y


DROP = {"dropout": 0.2, "recurrent_dropout": 0.2}
FOUR_RATES = dict(DROP, output_dropout=0.2, weight_dropout=0.2)
AWD = {"dropout": 0.2, "weight_dropout": 0.3, "output_dropout": 0.2}


def _recurrent_cases():
    """(figure, ours, reference name, reference, target, train or predict)."""
    from keras_reg.layers import (
        LayerNormGRU,
        LayerNormLSTM,
        VariationalGRU,
        VariationalLSTM,
        VariationalSimpleRNN,
    )

    LSTM, GRU, RNN = keras.layers.LSTM, keras.layers.GRU, keras.layers.SimpleRNN
    return [
        (
            "train, VariationalLSTM(dropout .2, recurrent .2)",
            lambda: VariationalLSTM(128, seed=1, **DROP),
            "LSTM(dropout .2, recurrent .2)",
            lambda: LSTM(128, **DROP),
            "<= 0.6 / 0.6 / 0.85",
            "train",
        ),
        (
            "train, VariationalLSTM(dropout .2, recurrent .2)",
            lambda: VariationalLSTM(128, seed=1, **DROP),
            "LSTM() no dropout",
            lambda: LSTM(128),
            "<= 1.0",
            "train",
        ),
        (
            "train, VariationalGRU(dropout .2, recurrent .2)",
            lambda: VariationalGRU(128, seed=1, **DROP),
            "GRU(dropout .2, recurrent .2)",
            lambda: GRU(128, **DROP),
            "<= 0.6 / 0.6 / 0.85",
            "train",
        ),
        (
            "train, VariationalLSTM(dropout .2, weight .3, output .2) (AWD-LSTM)",
            lambda: VariationalLSTM(128, seed=1, **AWD),
            "LSTM(dropout .2)",
            lambda: LSTM(128, dropout=0.2),
            "<= 0.4 / 1.0 / 1.0",
            "train",
        ),
        (
            "predict, VariationalLSTM with four rates .2",
            lambda: VariationalLSTM(128, seed=1, **FOUR_RATES),
            "LSTM() predict",
            lambda: LSTM(128),
            "<= 1.05",
            "predict",
        ),
        (
            "predict, VariationalGRU(dropout .2, recurrent .2)",
            lambda: VariationalGRU(128, seed=1, **DROP),
            "GRU() predict",
            lambda: GRU(128),
            "<= 1.05",
            "predict",
        ),
        (
            "train, LayerNormLSTM(dropout .2, recurrent .2)",
            lambda: LayerNormLSTM(128, seed=1, **DROP),
            "LSTM(dropout .2, recurrent .2)",
            lambda: LSTM(128, **DROP),
            "<= 1.0 / 1.0 / 1.2",
            "train",
        ),
        (
            "train, LayerNormGRU(dropout .2, recurrent .2)",
            lambda: LayerNormGRU(128, seed=1, **DROP),
            "GRU(dropout .2, recurrent .2)",
            lambda: GRU(128, **DROP),
            "<= 1.0 / 1.0 / 1.2",
            "train",
        ),
        (
            "train, VariationalSimpleRNN(dropout .2, recurrent .2)",
            lambda: VariationalSimpleRNN(128, seed=1, **DROP),
            "SimpleRNN(dropout .2, recurrent .2)",
            lambda: RNN(128, **DROP),
            "<= 1.0",
            "train",
        ),
        (
            "predict, VariationalSimpleRNN(dropout .2, recurrent .2)",
            lambda: VariationalSimpleRNN(128, seed=1, **DROP),
            "SimpleRNN() predict",
            lambda: RNN(128),
            "<= 1.05",
            "predict",
        ),
    ]


def recurrent_vs_keras():
    """The recurrent layers against the Keras built-ins: train steps
    (`train_on_batch`) and inference (`predict_on_batch`). Targets read
    torch / tensorflow / jax where they differ."""
    group = "Recurrent layers vs Keras, B=64 T=100 F=32 units=128"
    x, y = _rnn_case()
    rows = []
    for figure, ours, reference, ref, target, mode in _recurrent_cases():
        if mode == "train":
            times = interleaved(_rnn_step(ours(), x, y), _rnn_step(ref(), x, y), 10, 2)
        else:
            times = interleaved(_rnn_predict(ours(), x), _rnn_predict(ref(), x), 20, 3)
        rows.append(_row(group, figure, reference, target, times))
    return rows


BATCH_SHARED = dict(DROP, recurrent_dropout_mode="batch")
# AWD-LSTM's rates with the recurrent kernel's rows dropped instead of its
# entries: a batch-shared recurrent mask folded into the kernel.
AWD_BATCH = {
    "dropout": 0.2,
    "recurrent_dropout": 0.3,
    "recurrent_dropout_mode": "batch",
    "output_dropout": 0.2,
}


def _torch_train_step(forward, parameters, x, y, units=128):
    """One raw torch training step: `forward(x)` (the last output), a
    `torch.nn.Linear(units, 1)` head, the mean squared error, `backward()`
    and `torch.optim.SGD` over `parameters` and the head's. The torch rows
    of `recurrent_dropout_modes` put both sides through this same step, so
    that neither pays for Keras' `train_on_batch` or an optimizer the other
    does not (issue 28, section 6)."""
    import torch

    torch.manual_seed(0)
    head = torch.nn.Linear(units, 1)
    optimizer = torch.optim.SGD([*parameters, *head.parameters()], lr=0.01)
    x, y = torch.as_tensor(x), torch.as_tensor(y)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(head(forward(x)), y)
        loss.backward()
        optimizer.step()

    step()
    return step


def _keras_layer_step(layer, x, y, units=128):
    """`_torch_train_step` over a keras_reg layer, called eagerly in
    training mode."""
    layer.build(x.shape)
    parameters = [v.value for v in layer.trainable_variables]
    return _torch_train_step(lambda x: layer(x, training=True), parameters, x, y, units)


def _torch_lstm_step(x, y, units=128, dropout=0.2):
    """`_torch_train_step` over `torch.nn.LSTM` (torch's fused kernel) after
    input dropout: the reference of the torch rows."""
    import torch

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(x.shape[-1], units, batch_first=True)

    def forward(x):
        x = torch.nn.functional.dropout(x, dropout, training=True)
        return lstm(x)[0][:, -1]

    return _torch_train_step(forward, list(lstm.parameters()), x, y, units)


def torch_threads():
    """torch's intra-op thread count in this process (the default unless
    the environment sets one, e.g. `OMP_NUM_THREADS`)."""
    import torch

    return torch.get_num_threads()


def recurrent_dropout_modes():
    """Issue 25: recurrent dropout at the fused kernel's speed. torch: the
    batch-shared recurrent mask (folded into the kernel: torch's fused
    LSTM) and the per-sample mask (the hand-written BPTT) against
    `torch.nn.LSTM` with input dropout, each side a raw torch training step
    (`_torch_train_step`: forward, backward, SGD; no Keras `train_on_batch`
    on either side) at torch's default thread count; TensorFlow and JAX:
    the batch-shared mask against weight drop at AWD-LSTM's rates, both
    through `train_on_batch`. Interleaved medians of 41 repeats."""
    from keras_reg.layers import VariationalLSTM

    group = "Recurrent dropout modes, train step, B=64 T=100 F=32 units=128"
    x, y = _rnn_case()
    rows = []
    if BACKEND == "torch":
        reference = (
            f"torch.nn.LSTM, input dropout .2 (raw torch step, "
            f"{torch_threads()} threads)"
        )
        cases = [
            (
                "VariationalLSTM(dropout .2, recurrent .2, mode batch)",
                BATCH_SHARED,
                "<= 1.05",
            ),
            ("VariationalLSTM(dropout .2, recurrent .2) (per sample)", DROP, "<= 1.5"),
        ]
        for figure, rates, target in cases:
            times = interleaved(
                _keras_layer_step(VariationalLSTM(128, seed=1, **rates), x, y),
                _torch_lstm_step(x, y),
                41,
                5,
            )
            rows.append(_row(group, figure, reference, target, times))
        return rows
    ours = VariationalLSTM(128, seed=1, **AWD_BATCH)
    ref = VariationalLSTM(128, seed=1, **AWD)
    times = interleaved(_rnn_step(ours, x, y), _rnn_step(ref, x, y), 41, 5)
    rows.append(
        _row(
            group,
            "VariationalLSTM(dropout .2, recurrent .3 batch, output .2)",
            "VariationalLSTM(dropout .2, weight .3, output .2) (AWD-LSTM)",
            "<= 1.0",
            times,
        )
    )
    return rows


def mc_predict_vs_predict():
    """Issue 17: mc_predict(samples=30) against 30 calls of model.predict on
    an MLP with BatchNorm and two InvertedDropout(0.5), 1,000 rows, batch
    250; stacked samples (the default) and one predict per sample."""
    from keras_reg.inference import mc_predict

    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 64)).astype("float32")
    inputs = keras.Input((64,))
    h = keras.layers.Dense(256, activation="relu")(inputs)
    h = keras.layers.BatchNormalization()(h)
    h = InvertedDropout(0.5, seed=1)(h)
    h = keras.layers.Dense(256, activation="relu")(h)
    h = InvertedDropout(0.5, seed=2)(h)
    model = keras.Model(inputs, keras.layers.Dense(10)(h))

    def ours(samples_per_call):
        def run():
            mc_predict(
                model, x, samples=30, batch_size=250, samples_per_call=samples_per_call
            )

        return run

    def reference():
        for _ in range(30):
            model.predict(x, batch_size=250, verbose=0)

    group = "Monte Carlo dropout, MLP + BatchNorm, 1,000 rows, batch 250, 30 samples"
    return [
        _row(
            group,
            "mc_predict(model, x, samples=30)",
            "30 x model.predict(x)",
            "<= 1.2",
            interleaved(ours(None), reference, 7, 2),
        ),
        _row(
            group,
            "mc_predict(..., samples_per_call=1)",
            "30 x model.predict(x)",
            "(one predict per sample)",
            interleaved(ours(1), reference, 7, 2),
        ),
    ]


def _digits_pool(rows=10_000):
    """scikit-learn's 8x8 digits (1,797 images, bundled), scaled to [0, 1]
    and tiled to `rows` rows of 64 features."""
    from sklearn.datasets import load_digits

    x = (load_digits().data / 16.0).astype("float32")
    return np.resize(x, (rows, x.shape[1]))


def _digits_mlp():
    """64 -> 128 -> 128 -> 10 softmax, InvertedDropout(0.5) after each
    hidden layer: a small classifier whose forward pass is cheap, so that
    what `acquire` adds to `mc_predict` shows."""
    inputs = keras.Input((64,))
    h = keras.layers.Dense(128, activation="relu")(inputs)
    h = InvertedDropout(0.5, seed=1)(h)
    h = keras.layers.Dense(128, activation="relu")(h)
    h = InvertedDropout(0.5, seed=2)(h)
    outputs = keras.layers.Dense(10, activation="softmax")(h)
    return keras.Model(inputs, outputs)


def acquire_vs_mc_predict():
    """Issue 31: `acquire` over a pool of 10,000 digits with 20 samples
    against `mc_predict` over that pool (the same samples, batch 256), and
    BatchBALD's cost per acquired point."""
    from keras_reg.inference import acquire, mc_predict

    pool = _digits_pool()
    model = _digits_mlp()
    samples, batch = 20, 256

    def reference():
        mc_predict(model, pool, samples=samples, batch_size=batch, seed=0)

    def ours(method, count=10):
        def run():
            acquire(
                model,
                pool,
                count,
                method=method,
                samples=samples,
                seed=0,
                batch_size=batch,
            )

        return run

    group = (
        "Acquisition, MLP 64-128-128-10 with two InvertedDropout(0.5), a pool "
        "of 10,000 digits, 20 samples, batch 256"
    )
    rows = []
    reference_times = []
    for method in ("bald", "entropy", "variation_ratio"):
        times = interleaved(ours(method), reference, 7, 2)
        reference_times.append(times[1])
        rows.append(
            _row(
                group,
                f'acquire(pool, 10, method="{method}")',
                "mc_predict(pool, samples=20)",
                "<= 1.2",
                times,
            )
        )
    # BatchBALD: the scoring pass (consistent masks) plus the greedy
    # selection. Its cost per acquired point is the difference between
    # 10 and 5 points, over 5: the steps beyond the third score the
    # candidates against 1,024 sampled configurations, as every later
    # step does.
    ten, five = interleaved(ours("batchbald", 10), ours("batchbald", 5), 5, 1)
    pool_pass = sorted(reference_times)[len(reference_times) // 2]
    rows.append(
        _row(
            group,
            'acquire(pool, 10, method="batchbald")',
            "mc_predict(pool, samples=20)",
            "(the whole call)",
            (ten, pool_pass),
        )
    )
    rows.append(
        _row(
            group,
            "batchbald, per acquired point (10 points - 5 points) / 5",
            "mc_predict(pool, samples=20)",
            "(per point)",
            ((ten - five) / 5, pool_pass),
        )
    )
    return rows


FIGURES = {
    "dropout": dropout_vs_keras,
    "portable": portable_vs_native,
    "recurrent": recurrent_vs_keras,
    "mc_predict": mc_predict_vs_predict,
    "recurrent_modes": recurrent_dropout_modes,
    "acquire": acquire_vs_mc_predict,
}
