"""SimpleRNN cells and layers with shared-mask dropout, and their LayerNorm
variant.

The equation lives in `VariationalSimpleRNNCell._project` (the input side,
run for all steps at once by the sequence layer) and `._step` (one
recurrent step); `LayerNormSimpleRNNCell` is the same cell with `_normalize`
switched on and the bias added after the normalization, as in TensorFlow
Addons.
"""

import keras
from keras import ops

from keras_reg._checks import get_initializer
from keras_reg.layers.rnn._cell import VariationalCell, gated_matmul
from keras_reg.layers.rnn._layer_norm import LayerNormCell
from keras_reg.layers.rnn._sequence import VariationalRNN, check_implementation


@keras.saving.register_keras_serializable(package="keras_reg")
class VariationalSimpleRNNCell(VariationalCell, keras.layers.SimpleRNNCell):
    """Cell class of `VariationalSimpleRNN`: `h = activation(x @ kernel +
    h_prev @ recurrent_kernel + bias)` with dropout masks shared across time
    steps.

    Takes every argument of `keras.layers.SimpleRNNCell`, with the same
    defaults and weights, and the regularization arguments below. With
    every rate at 0 it computes exactly `keras.layers.SimpleRNNCell`.

    What is random, and what is shared (every rate is the fraction to DROP,
    not the keep probability; kept units are scaled by `1 / (1 - rate)`):

    - `dropout` masks the input `x_t`: one mask per sample, the same at
      every step of a sequence.
    - `recurrent_dropout` masks `h_{t-1}` before the recurrent matmul: one
      mask per sample, the same at every step.
    - `output_dropout` masks the emitted output `h_t` (not the carried
      state): one mask per sample, the same at every step.
    - `weight_dropout` drops entries of the recurrent kernel (DropConnect):
      one mask per call, shared by the whole batch and every step.
    - `zoneout`: each unit of `h` keeps its previous value with this
      probability, drawn afresh at every step; at inference the state is
      the expectation `zoneout * old + (1 - zoneout) * new`.

    Inside `keras.layers.RNN` the masks are drawn once per training call,
    before the loop, and dropped after it; inference draws nothing.
    `zoneout` and `share_input_mask=False` need `VariationalSimpleRNN`. A
    cell called on its own is one step, with masks of its own.

    Args:
        units: Positive integer, dimensionality of the output space.
        activation: Activation function to use. Defaults to hyperbolic
            tangent (`tanh`). If you pass None, no activation is applied
            (ie. "linear" activation: `a(x) = x`).
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
        per_gate_masks: Boolean, accepted for symmetry with the gated
            cells; a SimpleRNN has one gate block, so it changes nothing.
            Defaults to `False`.
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
        states: A 2D tensor with shape `(batch, units)` (or a list holding
            it), the state of the previous step.
        training: Python boolean indicating whether the cell should behave
            in training mode (masks applied) or in inference mode (no
            masks; zoneout is its expectation). Defaults to `False`.

    Example:

    >>> cell = keras_reg.layers.VariationalSimpleRNNCell(8, dropout=0.5)
    >>> layer = keras.layers.RNN(cell, return_sequences=True)
    >>> layer(keras.ops.ones((4, 10, 3)), training=True).shape
    (4, 10, 8)

    Reference:
        - [Gal & Ghahramani, 2016](https://arxiv.org/abs/1512.05287), "A
          Theoretically Grounded Application of Dropout in Recurrent Neural
          Networks".
    """

    _gates = 1
    # The backend kernels that compute this cell (`keras_reg._kernels`).
    _fused_kind = "rnn"
    # The LayerNorm cell adds the bias after normalizing the sum.
    _bias_after_norm = False

    def __init__(
        self,
        units,
        activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
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
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
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
        xw = gated_matmul(inputs, input_mask, self.kernel)
        if self.use_bias and not self._bias_after_norm:
            xw = ops.add(xw, self.bias)
        return xw

    def _step(self, xw, states, recurrent_mask, recurrent_kernel):
        (h_prev,) = states
        z = ops.add(xw, gated_matmul(h_prev, recurrent_mask, recurrent_kernel))
        if self._bias_after_norm:
            z = self._normalize("sum", z)
            if self.use_bias:
                z = ops.add(z, self.bias)
        h = self.activation(z) if self.activation is not None else z
        return [h]


@keras.saving.register_keras_serializable(package="keras_reg")
class VariationalSimpleRNN(VariationalRNN):
    """Fully-connected RNN layer whose dropout masks are shared across time
    steps.

    A drop-in for `keras.layers.SimpleRNN`: it takes every argument of the
    Keras layer, with the same defaults and weights, and the regularization
    arguments below. With every rate at 0 it computes exactly
    `keras.layers.SimpleRNN`, and it equals
    `keras.layers.RNN(VariationalSimpleRNNCell(...))` with the same
    arguments and seed.

    What is random, and what is shared (every rate is the fraction to DROP,
    not the keep probability; kept units are scaled by `1 / (1 - rate)`):

    - `dropout` masks the input `x_t`: one mask per sample, the same at
      every step of the sequence (`share_input_mask=False`: a fresh mask at
      every step).
    - `recurrent_dropout` masks `h_{t-1}` before the recurrent matmul: one
      mask per sample, the same at every step.
    - `output_dropout` masks the emitted outputs `h_t` (not the carried
      state nor the returned state): one mask per sample, the same at every
      step.
    - `weight_dropout` drops entries of the recurrent kernel (DropConnect):
      one mask per call, shared by the whole batch and every step.
    - `zoneout`: each unit of `h` keeps its previous value with this
      probability, drawn afresh at every step; at inference the state is
      the expectation `zoneout * old + (1 - zoneout) * new`.

    The masks are drawn once per training call, before the loop, so the
    input projection of all steps runs as one matmul. Inference draws
    nothing and computes what `keras.layers.SimpleRNN` computes. Where the
    call allows it, a backend's fused kernel runs the loop: see
    `use_cudnn`.

    Args:
        units: Positive integer, dimensionality of the output space.
        activation: Activation function to use. Defaults to hyperbolic
            tangent (`tanh`). If you pass None, no activation is applied
            (ie. "linear" activation: `a(x) = x`).
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
        per_gate_masks: Boolean, accepted for symmetry with the gated
            layers; changes nothing here. Defaults to `False`.
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
            recurrence in the backend's fused kernel where the call allows
            it, and in the portable loop elsewhere; `False` always uses the
            portable loop; `True` raises where no fused kernel can run the
            call. (`keras.layers.SimpleRNN` has no such argument.) Defaults
            to `"auto"`.
        zero_output_for_mask: Boolean. With an input mask, `True` outputs
            zeros at masked steps; `False` repeats the output of the
            previous step. Defaults to `False`.
        implementation: Keras' legacy argument, accepted and kept in the
            config; results do not depend on it. Defaults to `2`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        sequences: A 3D tensor, with shape `(batch, timesteps, feature)`.
        initial_state: The initial state tensor `(batch, units)`, or a list
            holding it. Defaults to zeros (or, if `stateful`, the last
            state).
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
        last state `(batch, units)`.

    Example:

    >>> inputs = keras.Input((None, 4))
    >>> x = keras_reg.layers.VariationalSimpleRNN(8, dropout=0.5)(inputs)
    >>> x.shape
    (None, 8)

    Reference:
        - [Gal & Ghahramani, 2016](https://arxiv.org/abs/1512.05287), "A
          Theoretically Grounded Application of Dropout in Recurrent Neural
          Networks".
    """

    def __init__(
        self,
        units,
        activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
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
        cell = VariationalSimpleRNNCell(
            units,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
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
            name="variational_simple_rnn_cell",
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


@keras.saving.register_keras_serializable(package="keras_reg")
class LayerNormSimpleRNNCell(LayerNormCell, VariationalSimpleRNNCell):
    """SimpleRNN cell with layer normalization, compatible with TensorFlow
    Addons' `LayerNormSimpleRNNCell`, and the regularization of
    `VariationalSimpleRNNCell`.

    Equation (TensorFlow Addons; `LN` over the last axis with a scale and
    no offset, biased variance, computed in at least float32):

        h = activation(gamma * normalize(x @ kernel + h_prev @ recurrent_kernel)
                       + bias)

    Weights, in order: `kernel`, `recurrent_kernel`, `bias`, `gamma`, as in
    TensorFlow Addons, so `cell.set_weights(tfa_cell.get_weights())`
    reproduces a TFA cell. Layer normalization of `[0.5, 1.0, -0.5]` (gamma
    1, epsilon 0): mean 1/3, variance 0.3889, result
    `[0.267, 1.069, -1.336]`.

    What is random, and what is shared: as in `VariationalSimpleRNNCell`.
    Every rate is the fraction to DROP; `dropout`, `recurrent_dropout` and
    `output_dropout` draw one mask per sample shared by all steps,
    `weight_dropout` one mask per call for the whole batch, `zoneout` a
    fresh mask per step (its expectation at inference).

    Args:
        units: Positive integer, dimensionality of the output space.
        activation: Activation function to use. Defaults to hyperbolic
            tangent (`tanh`). If you pass None, no activation is applied
            (ie. "linear" activation: `a(x) = x`).
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
        layernorm_epsilon: Float > 0 added to the variance. Defaults to
            `1e-5`.
        gamma_initializer: Initializer of the LayerNorm scale. Defaults to
            `"ones"`.
        gamma_regularizer: Optional regularizer of the scale. Defaults to
            `None`.
        gamma_constraint: Optional constraint of the scale. Defaults to
            `None`.
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
        per_gate_masks: Boolean, accepted for symmetry with the gated
            cells; a SimpleRNN has one gate block, so it changes nothing.
            Defaults to `False`.
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
        states: A 2D tensor with shape `(batch, units)` (or a list holding
            it), the state of the previous step.
        training: Python boolean indicating whether the cell should behave
            in training mode or in inference mode. Defaults to `False`.

    Example:

    >>> cell = keras_reg.layers.LayerNormSimpleRNNCell(8, dropout=0.5)
    >>> layer = keras.layers.RNN(cell, return_sequences=True)
    >>> layer(keras.ops.ones((4, 10, 3))).shape
    (4, 10, 8)

    Reference:
        - [Ba, Kiros & Hinton, 2016](https://arxiv.org/abs/1607.06450),
          "Layer Normalization".
    """

    _bias_after_norm = True

    def __init__(
        self,
        units,
        activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        layernorm_epsilon=1e-5,
        gamma_initializer="ones",
        gamma_regularizer=None,
        gamma_constraint=None,
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
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
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
        self.gamma_initializer = get_initializer("gamma_initializer", gamma_initializer)
        self.gamma_regularizer = keras.regularizers.get(gamma_regularizer)
        self.gamma_constraint = keras.constraints.get(gamma_constraint)
        self._init_norm("layernorm_epsilon", layernorm_epsilon)

    def build(self, input_shape):
        super().build(input_shape)
        self._add_norm(
            "sum",
            self.units,
            self.gamma_initializer,
            gamma_regularizer=self.gamma_regularizer,
            gamma_constraint=self.gamma_constraint,
        )

    @property
    def layernorm_epsilon(self):
        return self._norm_epsilon

    def get_config(self):
        return {
            **super().get_config(),
            "layernorm_epsilon": self.layernorm_epsilon,
            "gamma_initializer": keras.initializers.serialize(self.gamma_initializer),
            "gamma_regularizer": keras.regularizers.serialize(self.gamma_regularizer),
            "gamma_constraint": keras.constraints.serialize(self.gamma_constraint),
        }


@keras.saving.register_keras_serializable(package="keras_reg")
class LayerNormSimpleRNN(VariationalRNN):
    """Fully-connected RNN layer with layer normalization
    (`LayerNormSimpleRNNCell`) and dropout masks shared across time steps.

    Takes every argument of `keras.layers.SimpleRNN`, the LayerNorm
    arguments of `LayerNormSimpleRNNCell` (TensorFlow Addons' names and
    defaults) and the regularization arguments of `VariationalSimpleRNN`.
    `x @ kernel` of all steps runs before the time loop as one matmul.
    Equation, per step:

        h = activation(gamma * normalize(x @ kernel + h_prev @ recurrent_kernel)
                       + bias)

    What is random, and what is shared: as in `VariationalSimpleRNN`. Every
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
        layernorm_epsilon: Float > 0 added to the variance. Defaults to
            `1e-5`.
        gamma_initializer: Initializer of the LayerNorm scale. Defaults to
            `"ones"`.
        gamma_regularizer: Optional regularizer of the scale. Defaults to
            `None`.
        gamma_constraint: Optional constraint of the scale. Defaults to
            `None`.
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
        per_gate_masks: Boolean, accepted for symmetry with the gated
            layers; changes nothing here. Defaults to `False`.
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
        use_cudnn: `"auto"`, `True` or `False`, as in
            `VariationalSimpleRNN`. No fused kernel normalizes, so `True`
            raises. Defaults to `"auto"`.
        zero_output_for_mask: Boolean. With an input mask, `True` outputs
            zeros at masked steps; `False` repeats the output of the
            previous step. Defaults to `False`.
        implementation: Keras' legacy argument, accepted and kept in the
            config; results do not depend on it. Defaults to `2`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        sequences: A 3D tensor, with shape `(batch, timesteps, feature)`.
        initial_state: The initial state tensor `(batch, units)`, or a list
            holding it. Defaults to zeros.
        mask: Binary tensor of shape `(batch, timesteps)` indicating
            whether a given timestep should be masked (optional).
        training: Python boolean indicating whether the layer should behave
            in training mode or in inference mode. Defaults to `False`.

    Input shape:
        3D tensor with shape `(batch, timesteps, features)`.

    Output shape:
        `(batch, units)`, or `(batch, timesteps, units)` with
        `return_sequences=True`; with `return_state=True`, followed by the
        last state.

    Example:

    >>> inputs = keras.Input((None, 4))
    >>> x = keras_reg.layers.LayerNormSimpleRNN(8, recurrent_dropout=0.3)(inputs)
    >>> x.shape
    (None, 8)

    Reference:
        - [Ba, Kiros & Hinton, 2016](https://arxiv.org/abs/1607.06450),
          "Layer Normalization".
    """

    def __init__(
        self,
        units,
        activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        layernorm_epsilon=1e-5,
        gamma_initializer="ones",
        gamma_regularizer=None,
        gamma_constraint=None,
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
        cell = LayerNormSimpleRNNCell(
            units,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            layernorm_epsilon=layernorm_epsilon,
            gamma_initializer=gamma_initializer,
            gamma_regularizer=gamma_regularizer,
            gamma_constraint=gamma_constraint,
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
            name="layer_norm_simple_rnn_cell",
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
    def layernorm_epsilon(self):
        return self.cell.layernorm_epsilon

    @property
    def gamma_initializer(self):
        return self.cell.gamma_initializer

    @property
    def gamma_regularizer(self):
        return self.cell.gamma_regularizer

    @property
    def gamma_constraint(self):
        return self.cell.gamma_constraint
