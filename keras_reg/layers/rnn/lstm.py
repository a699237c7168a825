"""LSTM cells and layers with shared-mask dropout, and their LayerNorm variant.

The equations live in `VariationalLSTMCell._project` (the input side, run
for all steps at once by the sequence layer) and `._step` (one recurrent
step); `LayerNormLSTMCell` is the same cell with `_normalize` switched on.
"""

import keras
from keras import ops

from keras_reg.layers.rnn._cell import VariationalCell, gated_matmul
from keras_reg.layers.rnn._layer_norm import GatedLayerNormCell
from keras_reg.layers.rnn._sequence import VariationalRNN, check_implementation


@keras.saving.register_keras_serializable(package="keras_reg")
class VariationalLSTMCell(VariationalCell, keras.layers.LSTMCell):
    """Cell class of `VariationalLSTM`: an LSTM cell whose dropout masks are
    shared across time steps.

    Takes every argument of `keras.layers.LSTMCell`, with the same defaults
    and weights (`kernel`, `recurrent_kernel`, `bias`; gate order i, f, c,
    o), and the regularization arguments below. With every rate at 0 it
    computes exactly `keras.layers.LSTMCell`.

    What is random, and what is shared (every rate is the fraction to DROP,
    not the keep probability; kept units are scaled by `1 / (1 - rate)`):

    - `dropout` masks the input `x_t`: one mask per sample, the same at
      every step of a sequence.
    - `recurrent_dropout` masks `h_{t-1}` before the recurrent matmul: one
      mask per sample, the same at every step.
    - `output_dropout` masks the emitted output `h_t` (not the carried
      state): one mask per sample, the same at every step.
    - `weight_dropout` drops entries of the recurrent kernel (DropConnect,
      AWD-LSTM's weight drop): one mask per call, shared by the whole batch
      and every step.
    - `zoneout`: each unit of `h` and `c` keeps its previous value with this
      probability, drawn afresh at every step; at inference the state is
      the expectation `zoneout * old + (1 - zoneout) * new`.

    Inside `keras.layers.RNN` the masks are drawn once per training call,
    before the loop, and dropped after it; inference draws nothing.
    `zoneout` and `share_input_mask=False` draw a fresh mask at every step,
    which `keras.layers.RNN` cannot give a cell: use `VariationalLSTM`. A
    cell called on its own is one step, with masks of its own.

    Args:
        units: Positive integer, dimensionality of the output space.
        activation: Activation function to use. Defaults to hyperbolic
            tangent (`tanh`). If you pass None, no activation is applied
            (ie. "linear" activation: `a(x) = x`).
        recurrent_activation: Activation function to use for the recurrent
            step. Defaults to sigmoid (`sigmoid`).
        use_bias: Boolean, whether the layer should use a bias vector.
            Defaults to `True`.
        kernel_initializer: Initializer for the `kernel` weights matrix,
            used for the linear transformation of the inputs. Defaults to
            `"glorot_uniform"`.
        recurrent_initializer: Initializer for the `recurrent_kernel`
            weights matrix, used for the linear transformation of the
            recurrent state. Defaults to `"orthogonal"`.
        bias_initializer: Initializer for the bias vector. Defaults to
            `"zeros"`.
        unit_forget_bias: Boolean. If `True`, add 1 to the bias of the
            forget gate at initialization, as Jozefowicz et al. (2015)
            recommend. Defaults to `True`.
        kernel_regularizer: Regularizer function applied to the `kernel`
            weights matrix. Defaults to `None`.
        recurrent_regularizer: Regularizer function applied to the
            `recurrent_kernel` weights matrix. Defaults to `None`.
        bias_regularizer: Regularizer function applied to the bias vector.
            Defaults to `None`.
        kernel_constraint: Constraint function applied to the `kernel`
            weights matrix. Defaults to `None`.
        recurrent_constraint: Constraint function applied to the
            `recurrent_kernel` weights matrix. Defaults to `None`.
        bias_constraint: Constraint function applied to the bias vector.
            Defaults to `None`.
        dropout: Float in [0, 1), the fraction of the input units to DROP,
            one mask per sample shared by all steps. Defaults to `0.0`.
        recurrent_dropout: Float in [0, 1), the fraction of the units of
            `h_{t-1}` to DROP before the recurrent matmul, one mask per
            sample shared by all steps. Defaults to `0.0`.
        output_dropout: Float in [0, 1), the fraction of the output units to
            DROP, one mask per sample shared by all steps; the carried state
            is not dropped. Defaults to `0.0`.
        weight_dropout: Float in [0, 1), the fraction of the recurrent
            kernel's entries to DROP, one mask per call for the whole batch.
            Defaults to `0.0`.
        zoneout: Float in [0, 1), the probability that a state unit keeps
            its previous value at a step. Defaults to `0.0`.
        per_gate_masks: Boolean. `False` uses one input mask and one
            recurrent mask for all four gates; `True` an independent mask
            per gate (Gal & Ghahramani 2016). Defaults to `False`.
        share_input_mask: Boolean. `True` shares the input mask across time
            steps; `False` draws a fresh one at every step (the Keras 2
            behaviour on GPU). Defaults to `True`.
        recurrent_dropout_mode: `"sample"` or `"batch"`, how the
            `recurrent_dropout` mask is shared. `"sample"`: one mask per
            sample, shared by all steps (Gal & Ghahramani). `"batch"`: one
            mask per call, shared by every sample and step (one per gate
            with `per_gate_masks=True`); it folds into the recurrent kernel,
            `(h * m) @ U == h @ (diag(m) @ U)`, so the call runs in the
            fused kernels (torch's, cuDNN) as weight drop does. Defaults to
            `"sample"`.
        seed: Optional integer, the seed of the cell's random stream. The
            same seed gives the same masks, run after run (and, in the
            default "portable" mode, on every backend). Defaults to `None`:
            a seed is drawn, kept in the cell's state (saved with the
            weights) and left out of the config, so a clone draws its own.
        implementation: Keras' legacy argument, accepted and kept in the
            config; results do not depend on it. Defaults to `2`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: A 2D tensor, with shape `(batch, features)`.
        states: A list of two 2D tensors with shape `(batch, units)`, the
            state `h` and the carry `c` of the previous step.
        training: Python boolean indicating whether the cell should behave
            in training mode (masks applied) or in inference mode (no
            masks; zoneout is its expectation). Defaults to `False`.

    Example:

    >>> cell = keras_reg.layers.VariationalLSTMCell(32, recurrent_dropout=0.25)
    >>> layer = keras.layers.RNN(cell, return_sequences=True)
    >>> outputs = layer(keras.ops.ones((4, 10, 8)), training=True)
    >>> outputs.shape
    (4, 10, 32)

    Reference:
        - [Gal & Ghahramani, 2016](https://arxiv.org/abs/1512.05287), "A
          Theoretically Grounded Application of Dropout in Recurrent Neural
          Networks".
        - [Merity et al., 2017](https://arxiv.org/abs/1708.02182),
          "Regularizing and Optimizing LSTM Language Models" (weight drop).
        - [Krueger et al., 2016](https://arxiv.org/abs/1606.01305),
          "Zoneout: Regularizing RNNs by Randomly Preserving Hidden
          Activations".
    """

    _gates = 4
    # The backend kernels that compute this cell (`keras_reg._kernels`).
    _fused_kind = "lstm"

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        output_dropout=0.0,
        weight_dropout=0.0,
        zoneout=0.0,
        per_gate_masks=False,
        share_input_mask=True,
        recurrent_dropout_mode="sample",
        seed=None,
        implementation=2,
        **kwargs,
    ):
        super().__init__(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            **kwargs,
        )
        self._init_regularization(
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            output_dropout=output_dropout,
            weight_dropout=weight_dropout,
            zoneout=zoneout,
            per_gate_masks=per_gate_masks,
            share_input_mask=share_input_mask,
            recurrent_dropout_mode=recurrent_dropout_mode,
            seed=seed,
            implementation=check_implementation(implementation),
        )

    def _project(self, inputs, input_mask):
        xw = self._normalize("kernel", gated_matmul(inputs, input_mask, self.kernel))
        return ops.add(xw, self.bias) if self.use_bias else xw

    def _step(self, xw, states, recurrent_mask, recurrent_kernel):
        h_prev, c_prev = states
        hw = gated_matmul(h_prev, recurrent_mask, recurrent_kernel)
        z = ops.add(xw, self._normalize("recurrent", hw))
        i, f, g, o = ops.split(z, 4, axis=-1)
        sigma, tanh = self.recurrent_activation, self.activation
        c = self._normalize("state", sigma(f) * c_prev + sigma(i) * tanh(g))
        h = sigma(o) * tanh(c)
        return [h, c]


@keras.saving.register_keras_serializable(package="keras_reg")
class VariationalLSTM(VariationalRNN):
    """Long Short-Term Memory layer whose dropout masks are shared across
    time steps.

    A drop-in for `keras.layers.LSTM`: it takes every argument of the Keras
    layer, with the same defaults and weights, and the regularization
    arguments below. With every rate at 0 it computes exactly
    `keras.layers.LSTM`, and it equals `keras.layers.RNN(VariationalLSTMCell(...))`
    with the same arguments and seed.

    What is random, and what is shared (every rate is the fraction to DROP,
    not the keep probability; kept units are scaled by `1 / (1 - rate)`):

    - `dropout` masks the input `x_t`: one mask per sample, the same at
      every step of the sequence (`share_input_mask=False`: a fresh mask at
      every step).
    - `recurrent_dropout` masks `h_{t-1}` before the recurrent matmul: one
      mask per sample, the same at every step.
    - `output_dropout` masks the emitted outputs `h_t` (not the carried
      state nor the returned states): one mask per sample, the same at every
      step.
    - `weight_dropout` drops entries of the recurrent kernel (DropConnect,
      AWD-LSTM's weight drop): one mask per call, shared by the whole batch
      and every step.
    - `zoneout`: each unit of `h` and `c` keeps its previous value with this
      probability, drawn afresh at every step; at inference the state is
      the expectation `zoneout * old + (1 - zoneout) * new`.

    The masks are drawn once per training call, before the loop, so the
    input projection `(x * m) @ kernel + bias` of all steps runs as one
    matmul; only `h @ recurrent_kernel` stays in the loop. Inference draws
    nothing and computes what `keras.layers.LSTM` computes. Where the call
    allows it (inference, or masks that are all applied outside the
    recurrence), a backend's fused LSTM kernel runs the loop: see
    `use_cudnn`.

    Args:
        units: Positive integer, dimensionality of the output space.
        activation: Activation function to use. Defaults to hyperbolic
            tangent (`tanh`). If you pass None, no activation is applied
            (ie. "linear" activation: `a(x) = x`).
        recurrent_activation: Activation function to use for the recurrent
            step. Defaults to sigmoid (`sigmoid`).
        use_bias: Boolean, whether the layer should use a bias vector.
            Defaults to `True`.
        kernel_initializer: Initializer for the `kernel` weights matrix,
            used for the linear transformation of the inputs. Defaults to
            `"glorot_uniform"`.
        recurrent_initializer: Initializer for the `recurrent_kernel`
            weights matrix, used for the linear transformation of the
            recurrent state. Defaults to `"orthogonal"`.
        bias_initializer: Initializer for the bias vector. Defaults to
            `"zeros"`.
        unit_forget_bias: Boolean. If `True`, add 1 to the bias of the
            forget gate at initialization, as Jozefowicz et al. (2015)
            recommend. Defaults to `True`.
        kernel_regularizer: Regularizer function applied to the `kernel`
            weights matrix. Defaults to `None`.
        recurrent_regularizer: Regularizer function applied to the
            `recurrent_kernel` weights matrix. Defaults to `None`.
        bias_regularizer: Regularizer function applied to the bias vector.
            Defaults to `None`.
        activity_regularizer: Regularizer function applied to the output of
            the layer (its "activation"). Defaults to `None`.
        kernel_constraint: Constraint function applied to the `kernel`
            weights matrix. Defaults to `None`.
        recurrent_constraint: Constraint function applied to the
            `recurrent_kernel` weights matrix. Defaults to `None`.
        bias_constraint: Constraint function applied to the bias vector.
            Defaults to `None`.
        dropout: Float in [0, 1), the fraction of the input units to DROP,
            one mask per sample shared by all steps. Defaults to `0.0`.
        recurrent_dropout: Float in [0, 1), the fraction of the units of
            `h_{t-1}` to DROP before the recurrent matmul, one mask per
            sample shared by all steps. Defaults to `0.0`.
        output_dropout: Float in [0, 1), the fraction of the output units to
            DROP, one mask per sample shared by all steps. Defaults to
            `0.0`.
        weight_dropout: Float in [0, 1), the fraction of the recurrent
            kernel's entries to DROP, one mask per call for the whole batch.
            Defaults to `0.0`.
        zoneout: Float in [0, 1), the probability that a state unit keeps
            its previous value at a step. Defaults to `0.0`.
        per_gate_masks: Boolean. `False` uses one input mask and one
            recurrent mask for all four gates; `True` an independent mask
            per gate (Gal & Ghahramani 2016). Defaults to `False`.
        share_input_mask: Boolean. `True` shares the input mask across time
            steps; `False` draws a fresh one at every step (the Keras 2
            behaviour on GPU). Defaults to `True`.
        recurrent_dropout_mode: `"sample"` or `"batch"`, how the
            `recurrent_dropout` mask is shared. `"sample"`: one mask per
            sample, shared by all steps (Gal & Ghahramani). `"batch"`: one
            mask per call, shared by every sample and step (one per gate
            with `per_gate_masks=True`); it folds into the recurrent kernel,
            `(h * m) @ U == h @ (diag(m) @ U)`, so the call runs in the
            fused kernels (torch's, cuDNN) as weight drop does. Defaults to
            `"sample"`.
        seed: Optional integer, the seed of the layer's random stream. The
            same seed gives the same masks, run after run (and, in the
            default "portable" mode, on every backend). Defaults to `None`:
            a seed is drawn, kept in the layer's state (saved with the
            weights) and left out of the config, so a clone draws its own.
        return_sequences: Boolean. Whether to return the last output in the
            output sequence, or the full sequence. Defaults to `False`.
        return_state: Boolean. Whether to return the last state in addition
            to the output. Defaults to `False`.
        go_backwards: Boolean. If `True`, process the input sequence
            backwards and return the reversed sequence. Defaults to
            `False`.
        stateful: Boolean. If `True`, the last state for each sample at
            index i in a batch will be used as initial state for the sample
            of index i in the following batch. Defaults to `False`.
        unroll: Boolean. If `True`, the network will be unrolled, else a
            symbolic loop will be used. Unrolling can speed up an RNN,
            although it tends to be more memory-intensive. Unrolling is
            only suitable for short sequences. Defaults to `False`.
        use_cudnn: `"auto"`, `True` or `False`. `"auto"` runs the
            recurrence in the backend's fused kernel (cuDNN on GPU) where
            the call allows it, and in the portable loop elsewhere; `False`
            always uses the portable loop; `True` raises where no fused
            kernel can run the call. Defaults to `"auto"`.
        zero_output_for_mask: Boolean. With an input mask, `True` outputs
            zeros at masked steps; `False` repeats the output of the
            previous step. Defaults to `False`.
        implementation: Keras' legacy argument, accepted and kept in the
            config; results do not depend on it. Defaults to `2`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        sequences: A 3D tensor, with shape `(batch, timesteps, feature)`.
        initial_state: List of initial state tensors to be passed to the
            first call of the cell: `h` and `c`, each `(batch, units)`.
            Defaults to zeros (or, if `stateful`, the last states).
        mask: Binary tensor of shape `(batch, timesteps)` indicating
            whether a given timestep should be masked (optional). An
            individual `True` entry indicates that the corresponding
            timestep should be utilized, while a `False` entry indicates
            that the corresponding timestep should be ignored.
        training: Python boolean indicating whether the layer should behave
            in training mode (masks drawn and applied) or in inference mode.
            Defaults to `False`.

    Input shape:
        3D tensor with shape `(batch, timesteps, features)`.

    Output shape:
        `(batch, units)`, or `(batch, timesteps, units)` with
        `return_sequences=True`; with `return_state=True`, followed by the
        last `h` and `c`, each `(batch, units)`.

    Example:

    >>> inputs = keras.Input((None,), dtype="int32")
    >>> x = keras.layers.Embedding(1000, 64, mask_zero=True)(inputs)
    >>> x = keras_reg.layers.VariationalLSTM(
    ...     128, dropout=0.2, recurrent_dropout=0.2, output_dropout=0.3
    ... )(x)
    >>> model = keras.Model(inputs, keras.layers.Dense(1)(x))
    >>> model.output_shape
    (None, 1)

    Reference:
        - [Gal & Ghahramani, 2016](https://arxiv.org/abs/1512.05287), "A
          Theoretically Grounded Application of Dropout in Recurrent Neural
          Networks".
        - [Merity et al., 2017](https://arxiv.org/abs/1708.02182),
          "Regularizing and Optimizing LSTM Language Models" (weight drop).
        - [Krueger et al., 2016](https://arxiv.org/abs/1606.01305),
          "Zoneout: Regularizing RNNs by Randomly Preserving Hidden
          Activations".
    """

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        output_dropout=0.0,
        weight_dropout=0.0,
        zoneout=0.0,
        per_gate_masks=False,
        share_input_mask=True,
        recurrent_dropout_mode="sample",
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        use_cudnn="auto",
        zero_output_for_mask=False,
        implementation=2,
        **kwargs,
    ):
        cell = VariationalLSTMCell(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            output_dropout=output_dropout,
            weight_dropout=weight_dropout,
            zoneout=zoneout,
            per_gate_masks=per_gate_masks,
            share_input_mask=share_input_mask,
            recurrent_dropout_mode=recurrent_dropout_mode,
            seed=seed,
            implementation=implementation,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="variational_lstm_cell",
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            zero_output_for_mask=zero_output_for_mask,
            use_cudnn=use_cudnn,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )

    @property
    def recurrent_activation(self):
        return self.cell.recurrent_activation

    @property
    def unit_forget_bias(self):
        return self.cell.unit_forget_bias


@keras.saving.register_keras_serializable(package="keras_reg")
class LayerNormLSTMCell(GatedLayerNormCell, VariationalLSTMCell):
    """LSTM cell with layer normalization, compatible with TensorFlow
    Addons' `LayerNormLSTMCell`, and the regularization of
    `VariationalLSTMCell`.

    Equations (Ba et al. 2016; TensorFlow Addons), with `LN` over the last
    axis (biased variance, computed in at least float32) and the masks on
    `x` and `h_prev` as in `VariationalLSTMCell`:

        z = LN(x @ kernel) + LN(h_prev @ recurrent_kernel) + bias
        i, f, g, o = split(z, 4)
        c = LN(sigmoid(f) * c_prev + sigmoid(i) * tanh(g))   # carried
        h = sigmoid(o) * tanh(c)

    (`sigmoid` and `tanh` stand for `recurrent_activation` and
    `activation`.) Weights, in order: `kernel`, `recurrent_kernel`, `bias`,
    then gamma and beta of the kernel, recurrent and state norms: the order
    of TensorFlow Addons, so `cell.set_weights(tfa_cell.get_weights())`
    reproduces a TFA cell.

    What is random, and what is shared: as in `VariationalLSTMCell`. Every
    rate is the fraction to DROP; `dropout`, `recurrent_dropout` and
    `output_dropout` draw one mask per sample shared by all steps,
    `weight_dropout` one mask per call for the whole batch, `zoneout` a
    fresh mask per step (its expectation at inference).

    Args:
        units: Positive integer, dimensionality of the output space.
        activation: Activation function to use. Defaults to hyperbolic
            tangent (`tanh`). If you pass None, no activation is applied
            (ie. "linear" activation: `a(x) = x`).
        recurrent_activation: Activation function to use for the recurrent
            step. Defaults to sigmoid (`sigmoid`).
        use_bias: Boolean, whether the layer should use a bias vector.
            Defaults to `True`.
        kernel_initializer: Initializer for the `kernel` weights matrix,
            used for the linear transformation of the inputs. Defaults to
            `"glorot_uniform"`.
        recurrent_initializer: Initializer for the `recurrent_kernel`
            weights matrix, used for the linear transformation of the
            recurrent state. Defaults to `"orthogonal"`.
        bias_initializer: Initializer for the bias vector. Defaults to
            `"zeros"`.
        unit_forget_bias: Boolean. If `True`, add 1 to the bias of the
            forget gate at initialization, as Jozefowicz et al. (2015)
            recommend. Defaults to `True`.
        kernel_regularizer: Regularizer function applied to the `kernel`
            weights matrix. Defaults to `None`.
        recurrent_regularizer: Regularizer function applied to the
            `recurrent_kernel` weights matrix. Defaults to `None`.
        bias_regularizer: Regularizer function applied to the bias vector.
            Defaults to `None`.
        kernel_constraint: Constraint function applied to the `kernel`
            weights matrix. Defaults to `None`.
        recurrent_constraint: Constraint function applied to the
            `recurrent_kernel` weights matrix. Defaults to `None`.
        bias_constraint: Constraint function applied to the bias vector.
            Defaults to `None`.
        norm_gamma_initializer: Initializer of the LayerNorm scales.
            Defaults to `"ones"`.
        norm_beta_initializer: Initializer of the LayerNorm offsets.
            Defaults to `"zeros"`.
        norm_epsilon: Float > 0 added to the variance. Defaults to `1e-3`.
        dropout: Float in [0, 1), the fraction of the input units to DROP,
            one mask per sample shared by all steps. Defaults to `0.0`.
        recurrent_dropout: Float in [0, 1), the fraction of the units of
            `h_{t-1}` to DROP before the recurrent matmul, one mask per
            sample shared by all steps. Defaults to `0.0`.
        output_dropout: Float in [0, 1), the fraction of the output units to
            DROP, one mask per sample shared by all steps; the carried state
            is not dropped. Defaults to `0.0`.
        weight_dropout: Float in [0, 1), the fraction of the recurrent
            kernel's entries to DROP, one mask per call for the whole batch.
            Defaults to `0.0`.
        zoneout: Float in [0, 1), the probability that a state unit keeps
            its previous value at a step. Defaults to `0.0`.
        per_gate_masks: Boolean. `False` uses one input mask and one
            recurrent mask for all four gates; `True` an independent mask
            per gate (Gal & Ghahramani 2016). Defaults to `False`.
        share_input_mask: Boolean. `True` shares the input mask across time
            steps; `False` draws a fresh one at every step (the Keras 2
            behaviour on GPU). Defaults to `True`.
        recurrent_dropout_mode: `"sample"` or `"batch"`, how the
            `recurrent_dropout` mask is shared. `"sample"`: one mask per
            sample, shared by all steps (Gal & Ghahramani). `"batch"`: one
            mask per call, shared by every sample and step (one per gate
            with `per_gate_masks=True`); it folds into the recurrent kernel,
            `(h * m) @ U == h @ (diag(m) @ U)`, so the call runs in the
            fused kernels (torch's, cuDNN) as weight drop does. Defaults to
            `"sample"`.
        seed: Optional integer, the seed of the cell's random stream. The
            same seed gives the same masks, run after run (and, in the
            default "portable" mode, on every backend). Defaults to `None`:
            a seed is drawn, kept in the cell's state (saved with the
            weights) and left out of the config, so a clone draws its own.
        implementation: Keras' legacy argument, accepted and kept in the
            config; results do not depend on it. Defaults to `2`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: A 2D tensor, with shape `(batch, features)`.
        states: A list of two 2D tensors with shape `(batch, units)`, the
            state `h` and the normalized carry `c` of the previous step.
        training: Python boolean indicating whether the cell should behave
            in training mode or in inference mode. Defaults to `False`.

    Example:

    >>> cell = keras_reg.layers.LayerNormLSTMCell(32, recurrent_dropout=0.25)
    >>> layer = keras.layers.RNN(cell, return_sequences=True)
    >>> layer(keras.ops.ones((4, 10, 8))).shape
    (4, 10, 32)

    Reference:
        - [Ba, Kiros & Hinton, 2016](https://arxiv.org/abs/1607.06450),
          "Layer Normalization".
        - [Gal & Ghahramani, 2016](https://arxiv.org/abs/1512.05287).
    """

    _norm_sizes = (("kernel", 4), ("recurrent", 4), ("state", 1))

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        norm_gamma_initializer="ones",
        norm_beta_initializer="zeros",
        norm_epsilon=1e-3,
        dropout=0.0,
        recurrent_dropout=0.0,
        output_dropout=0.0,
        weight_dropout=0.0,
        zoneout=0.0,
        per_gate_masks=False,
        share_input_mask=True,
        recurrent_dropout_mode="sample",
        seed=None,
        implementation=2,
        **kwargs,
    ):
        super().__init__(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            output_dropout=output_dropout,
            weight_dropout=weight_dropout,
            zoneout=zoneout,
            per_gate_masks=per_gate_masks,
            share_input_mask=share_input_mask,
            recurrent_dropout_mode=recurrent_dropout_mode,
            seed=seed,
            implementation=implementation,
            **kwargs,
        )
        self._init_gated_norm(
            norm_gamma_initializer, norm_beta_initializer, norm_epsilon
        )


@keras.saving.register_keras_serializable(package="keras_reg")
class LayerNormLSTM(VariationalRNN):
    """LSTM layer with layer normalization (`LayerNormLSTMCell`) and
    dropout masks shared across time steps.

    Takes every argument of `keras.layers.LSTM`, the LayerNorm arguments of
    `LayerNormLSTMCell` (TensorFlow Addons' names and defaults) and the
    regularization arguments of `VariationalLSTM`. `LN(x @ kernel)` of all
    steps runs before the time loop, as one matmul and one normalization.
    Equations, per step:

        z = LN(x @ kernel) + LN(h_prev @ recurrent_kernel) + bias
        i, f, g, o = split(z, 4)
        c = LN(sigmoid(f) * c_prev + sigmoid(i) * tanh(g))   # carried
        h = sigmoid(o) * tanh(c)

    What is random, and what is shared: as in `VariationalLSTM`. Every
    rate is the fraction to DROP; `dropout`, `recurrent_dropout` and
    `output_dropout` draw one mask per sample shared by all steps,
    `weight_dropout` one mask per call for the whole batch, `zoneout` a
    fresh mask per step (its expectation at inference). The LayerNorm
    layers always run the portable loop (no fused kernel normalizes).

    Args:
        units: Positive integer, dimensionality of the output space.
        activation: Activation function to use. Defaults to hyperbolic
            tangent (`tanh`). If you pass None, no activation is applied
            (ie. "linear" activation: `a(x) = x`).
        recurrent_activation: Activation function to use for the recurrent
            step. Defaults to sigmoid (`sigmoid`).
        use_bias: Boolean, whether the layer should use a bias vector.
            Defaults to `True`.
        kernel_initializer: Initializer for the `kernel` weights matrix,
            used for the linear transformation of the inputs. Defaults to
            `"glorot_uniform"`.
        recurrent_initializer: Initializer for the `recurrent_kernel`
            weights matrix, used for the linear transformation of the
            recurrent state. Defaults to `"orthogonal"`.
        bias_initializer: Initializer for the bias vector. Defaults to
            `"zeros"`.
        unit_forget_bias: Boolean. If `True`, add 1 to the bias of the
            forget gate at initialization, as Jozefowicz et al. (2015)
            recommend. Defaults to `True`.
        kernel_regularizer: Regularizer function applied to the `kernel`
            weights matrix. Defaults to `None`.
        recurrent_regularizer: Regularizer function applied to the
            `recurrent_kernel` weights matrix. Defaults to `None`.
        bias_regularizer: Regularizer function applied to the bias vector.
            Defaults to `None`.
        activity_regularizer: Regularizer function applied to the output of
            the layer (its "activation"). Defaults to `None`.
        kernel_constraint: Constraint function applied to the `kernel`
            weights matrix. Defaults to `None`.
        recurrent_constraint: Constraint function applied to the
            `recurrent_kernel` weights matrix. Defaults to `None`.
        bias_constraint: Constraint function applied to the bias vector.
            Defaults to `None`.
        norm_gamma_initializer: Initializer of the LayerNorm scales.
            Defaults to `"ones"`.
        norm_beta_initializer: Initializer of the LayerNorm offsets.
            Defaults to `"zeros"`.
        norm_epsilon: Float > 0 added to the variance. Defaults to `1e-3`.
        dropout: Float in [0, 1), the fraction of the input units to DROP,
            one mask per sample shared by all steps. Defaults to `0.0`.
        recurrent_dropout: Float in [0, 1), the fraction of the units of
            `h_{t-1}` to DROP before the recurrent matmul, one mask per
            sample shared by all steps. Defaults to `0.0`.
        output_dropout: Float in [0, 1), the fraction of the output units to
            DROP, one mask per sample shared by all steps. Defaults to
            `0.0`.
        weight_dropout: Float in [0, 1), the fraction of the recurrent
            kernel's entries to DROP, one mask per call for the whole batch.
            Defaults to `0.0`.
        zoneout: Float in [0, 1), the probability that a state unit keeps
            its previous value at a step. Defaults to `0.0`.
        per_gate_masks: Boolean. `False` uses one input mask and one
            recurrent mask for all four gates; `True` an independent mask
            per gate (Gal & Ghahramani 2016). Defaults to `False`.
        share_input_mask: Boolean. `True` shares the input mask across time
            steps; `False` draws a fresh one at every step (the Keras 2
            behaviour on GPU). Defaults to `True`.
        recurrent_dropout_mode: `"sample"` or `"batch"`, how the
            `recurrent_dropout` mask is shared. `"sample"`: one mask per
            sample, shared by all steps (Gal & Ghahramani). `"batch"`: one
            mask per call, shared by every sample and step (one per gate
            with `per_gate_masks=True`); it folds into the recurrent kernel,
            `(h * m) @ U == h @ (diag(m) @ U)`, so the call runs in the
            fused kernels (torch's, cuDNN) as weight drop does. Defaults to
            `"sample"`.
        seed: Optional integer, the seed of the layer's random stream. The
            same seed gives the same masks, run after run (and, in the
            default "portable" mode, on every backend). Defaults to `None`:
            a seed is drawn, kept in the layer's state (saved with the
            weights) and left out of the config, so a clone draws its own.
        return_sequences: Boolean. Whether to return the last output in the
            output sequence, or the full sequence. Defaults to `False`.
        return_state: Boolean. Whether to return the last state in addition
            to the output. Defaults to `False`.
        go_backwards: Boolean. If `True`, process the input sequence
            backwards and return the reversed sequence. Defaults to
            `False`.
        stateful: Boolean. If `True`, the last state for each sample at
            index i in a batch will be used as initial state for the sample
            of index i in the following batch. Defaults to `False`.
        unroll: Boolean. If `True`, the network will be unrolled, else a
            symbolic loop will be used. Unrolling can speed up an RNN,
            although it tends to be more memory-intensive. Unrolling is
            only suitable for short sequences. Defaults to `False`.
        use_cudnn: `"auto"`, `True` or `False`, as in `VariationalLSTM`. No
            fused kernel normalizes, so `True` raises. Defaults to
            `"auto"`.
        zero_output_for_mask: Boolean. With an input mask, `True` outputs
            zeros at masked steps; `False` repeats the output of the
            previous step. Defaults to `False`.
        implementation: Keras' legacy argument, accepted and kept in the
            config; results do not depend on it. Defaults to `2`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        sequences: A 3D tensor, with shape `(batch, timesteps, feature)`.
        initial_state: List of initial state tensors `h` and `c`, each
            `(batch, units)`. Defaults to zeros.
        mask: Binary tensor of shape `(batch, timesteps)` indicating
            whether a given timestep should be masked (optional).
        training: Python boolean indicating whether the layer should behave
            in training mode or in inference mode. Defaults to `False`.

    Input shape:
        3D tensor with shape `(batch, timesteps, features)`.

    Output shape:
        `(batch, units)`, or `(batch, timesteps, units)` with
        `return_sequences=True`; with `return_state=True`, followed by the
        last `h` and `c`.

    Example:

    >>> inputs = keras.Input((None, 16))
    >>> x = keras_reg.layers.LayerNormLSTM(
    ...     64, dropout=0.2, recurrent_dropout=0.2, return_sequences=True
    ... )(inputs)
    >>> x.shape
    (None, None, 64)

    Reference:
        - [Ba, Kiros & Hinton, 2016](https://arxiv.org/abs/1607.06450),
          "Layer Normalization".
        - [Gal & Ghahramani, 2016](https://arxiv.org/abs/1512.05287).
    """

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        norm_gamma_initializer="ones",
        norm_beta_initializer="zeros",
        norm_epsilon=1e-3,
        dropout=0.0,
        recurrent_dropout=0.0,
        output_dropout=0.0,
        weight_dropout=0.0,
        zoneout=0.0,
        per_gate_masks=False,
        share_input_mask=True,
        recurrent_dropout_mode="sample",
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        use_cudnn="auto",
        zero_output_for_mask=False,
        implementation=2,
        **kwargs,
    ):
        cell = LayerNormLSTMCell(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            norm_gamma_initializer=norm_gamma_initializer,
            norm_beta_initializer=norm_beta_initializer,
            norm_epsilon=norm_epsilon,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            output_dropout=output_dropout,
            weight_dropout=weight_dropout,
            zoneout=zoneout,
            per_gate_masks=per_gate_masks,
            share_input_mask=share_input_mask,
            recurrent_dropout_mode=recurrent_dropout_mode,
            seed=seed,
            implementation=implementation,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="layer_norm_lstm_cell",
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            zero_output_for_mask=zero_output_for_mask,
            use_cudnn=use_cudnn,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )

    @property
    def recurrent_activation(self):
        return self.cell.recurrent_activation

    @property
    def unit_forget_bias(self):
        return self.cell.unit_forget_bias

    @property
    def norm_gamma_initializer(self):
        return self.cell.norm_gamma_initializer

    @property
    def norm_beta_initializer(self):
        return self.cell.norm_beta_initializer

    @property
    def norm_epsilon(self):
        return self.cell.norm_epsilon
