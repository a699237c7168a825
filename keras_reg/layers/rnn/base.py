"""What every shared-mask recurrent cell and sequence layer has in common.

A cell type's file holds its equations (`_project` for the input side,
`_step` for one recurrent step); this module holds the regularization that
wraps them: which masks exist, their shapes, when they are drawn, and the
sequence-layer loop that hoists the input projection out of the time loop.

Masks, all drawn through `keras_reg._random` before the loop (so the loop is
stateless and traces under JAX):

- input (`dropout`): `(gates, batch, features)`, shared by all steps; or
  `(steps, gates, batch, features)` with `share_input_mask=False`.
- recurrent (`recurrent_dropout`): `(gates, batch, units)`, shared by all
  steps. `gates` is 1 unless `per_gate_masks=True`.
- output (`output_dropout`): `(batch, units)` on the emitted output only.
- weight drop (`weight_dropout`): the recurrent kernel's shape, one mask per
  call for the whole batch and all steps.
- zoneout: `(steps, batch, state units)`, fresh at every step.
"""

import inspect

import keras
from keras import ops

from keras_reg import _random
from keras_reg._checks import check_bool, check_positive_float, get_initializer
from keras_reg.layers._stochastic import Rate, Stochastic, sampling

RATES = ("dropout", "recurrent_dropout", "output_dropout", "weight_dropout", "zoneout")


def regularization_doc(gates, states):
    """The docstring paragraph on regularization, for one cell type."""
    return f"""
    Regularization (all default off; every rate is the fraction to DROP, not
    the keep probability):

    - `dropout`: on the input `x_t`, one mask per sample shared by all time
      steps (`share_input_mask=False`: a fresh mask every step, the Keras 2
      GPU behaviour).
    - `recurrent_dropout`: on `h_{{t-1}}` before the recurrent matmul, one
      mask per sample shared by all steps.
    - `output_dropout`: on the emitted output `h_t`, one mask per sample
      shared by all steps; the carried state is not dropped.
    - `weight_dropout`: DropConnect on the recurrent kernel (AWD-LSTM), one
      mask per call shared by the batch and all steps.
    - `zoneout`: each state unit ({states}) keeps its previous value with
      this probability, fresh each step; at inference the state is
      `zoneout * old + (1 - zoneout) * new`.
    - `per_gate_masks`: `False` (default) uses one input and one recurrent
      mask for all {gates} gates; `True` an independent mask per gate (Gal &
      Ghahramani 2016).

    Kept units are scaled by `1 / (1 - rate)`.
"""


def args_doc(keras_name):
    """The docstring's `Args:` block, for a cell or layer mirroring
    `keras.layers.<keras_name>`."""
    return f"""
    Args:
        units: int, dimensionality of the output space.
        dropout, recurrent_dropout, output_dropout, weight_dropout, zoneout:
            floats in [0, 1), the fractions to DROP. Default to 0.
        per_gate_masks: bool. Defaults to `False`.
        share_input_mask: bool. Defaults to `True`.
        seed: optional int. Defaults to `None` (a seed is drawn once and kept
            in the config).
        **kwargs: every other argument of `keras.layers.{keras_name}`, with
            the same defaults.
"""


def cell_call_doc(states):
    """The docstring's `Call arguments:` block of a cell."""
    return f"""
    Call arguments:
        inputs: 2D tensor `(batch, features)`.
        states: {states}.
        training: bool. Defaults to `False`.
"""


def layer_call_doc(initial_state):
    """The docstring's `Call arguments:` block of a sequence layer."""
    return f"""
    Call arguments:
        sequences: 3D tensor `(batch, time, features)`.
        initial_state: {initial_state}.
        mask: optional boolean tensor `(batch, time)`.
        training: bool. Defaults to `False`.
"""


class VariationalCell(Stochastic):
    """Mixin for a Keras cell: shared-mask dropout, weight drop, zoneout.

    Listed before the Keras cell class in the bases
    (`class VariationalLSTMCell(VariationalCell, keras.layers.LSTMCell)`):
    its constructor takes the regularization arguments and hands every other
    argument to the Keras cell. The host cell class sets `_gates` (how many
    gate blocks its kernels hold) and implements `_project(inputs,
    input_mask)`, returning the input side of the pre-activations, and
    `_step(xw, states, recurrent_mask, recurrent_kernel)`, returning the new
    states (the output `h` first). Both pass the pre-activations they
    compute through `_normalize(which, v)`, the identity here, layer
    normalization in `LayerNormCell`: a cell type's equations are written
    once for its variational and its LayerNorm variant.
    """

    dropout = Rate()
    recurrent_dropout = Rate()
    output_dropout = Rate()
    weight_dropout = Rate()
    zoneout = Rate()
    _gates = 1

    def __init__(
        self,
        units,
        dropout=0.0,
        recurrent_dropout=0.0,
        output_dropout=0.0,
        weight_dropout=0.0,
        zoneout=0.0,
        per_gate_masks=False,
        share_input_mask=True,
        seed=None,
        **kwargs,
    ):
        # The Keras cell's own mask machinery stays off; ours replaces it.
        super().__init__(units, dropout=0.0, recurrent_dropout=0.0, **kwargs)
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.output_dropout = output_dropout
        self.weight_dropout = weight_dropout
        self.zoneout = zoneout
        self.per_gate_masks = check_bool("per_gate_masks", per_gate_masks)
        self.share_input_mask = check_bool("share_input_mask", share_input_mask)
        # A regularizer that is 0 at construction is left out of the graph
        # (it costs nothing); one that is positive can be rescheduled freely.
        object.__setattr__(
            self,
            "_active",
            {name: getattr(self, name) > 0 for name in RATES},
        )
        object.__setattr__(self, "_masks", None)
        object.__setattr__(self, "_driven", False)
        self._init_random(seed)

    def _check_rate_change(self, name, value):
        if value > 0 and not self._active.get(name, True):
            raise ValueError(
                f"Invalid value received for argument `{name}`: {value}. The "
                f"cell was built with {name}=0, so that regularizer is not part "
                f"of its computation. Construct the cell with a positive "
                f"`{name}` to change it during training."
            )

    # --- masks ---------------------------------------------------------------

    def _scaled_mask(self, name, shape, dtype):
        state, slot = self.seed_generator, self._slot(name)
        keep = _random.keep_mask(shape, state, slot)
        return ops.where(keep, _random.keep_scale(state, slot, dtype), 0)

    def _draw_masks(self, batch, features, dtype, steps=None):
        """Draws every mask of one training call."""
        gates = self._gates if self.per_gate_masks else 1
        masks = {}
        # Per-step masks need the number of steps; without it (inside
        # `keras.layers.RNN`) they are left out and `call` says so.
        per_step = steps is not None
        if self._active["dropout"] and (self.share_input_mask or per_step):
            shape = (gates, batch, features)
            if not self.share_input_mask:
                shape = (steps, *shape)
            masks["input"] = self._scaled_mask("dropout", shape, dtype)
        if self._active["recurrent_dropout"]:
            masks["recurrent"] = self._scaled_mask(
                "recurrent_dropout", (gates, batch, self.units), dtype
            )
        if self._active["output_dropout"]:
            masks["output"] = self._scaled_mask(
                "output_dropout", (batch, self.units), dtype
            )
        if self._active["weight_dropout"]:
            kernel = self.recurrent_kernel
            masks["recurrent_kernel"] = ops.multiply(
                ops.cast(kernel, dtype),
                self._scaled_mask("weight_dropout", tuple(kernel.shape), dtype),
            )
        if self._active["zoneout"] and per_step:
            state_units = self.units * len(self._state_sizes())
            keep_new = _random.keep_mask(
                (steps, batch, state_units), self.seed_generator, self._slot("zoneout")
            )
            masks["zoneout"] = ops.cast(keep_new, dtype)
        return masks

    def _per_step_masks(self):
        return self._active["zoneout"] or (
            self._active["dropout"] and not self.share_input_mask
        )

    def _need_steps(self, steps, what):
        if steps is None:
            raise ValueError(
                f"{type(self).__name__} with {what} draws a fresh mask at every "
                "step, which `keras.layers.RNN` cannot give a cell (it passes no "
                "step index). Use the keras_reg sequence layer instead, e.g. "
                "`keras_reg.layers.VariationalLSTM`."
            )
        return steps

    def _state_sizes(self):
        size = self.state_size
        return list(size) if isinstance(size, (list, tuple)) else [size]

    # Keras' RNN calls these before and after its loop for dropout cells,
    # in inference too, without saying which: the masks are drawn before
    # the loop (so the loop stays stateless), and if no step used them the
    # stream is put back where it was, so inference does not advance it
    # (and compiled steps drop the unused draws).
    def get_dropout_mask(self, step_input):
        if not self._driven and self._masks is None:
            batch, features = ops.shape(step_input)[0], ops.shape(step_input)[-1]
            before = ops.copy(self.seed_generator.state.value)
            object.__setattr__(self, "_state_before_masks", before)
            object.__setattr__(self, "_masks_used", False)
            object.__setattr__(
                self, "_masks", self._draw_masks(batch, features, self.compute_dtype)
            )
        return None

    def get_recurrent_dropout_mask(self, step_input):
        return None

    def reset_dropout_mask(self):
        if self._driven:
            return
        before = self.__dict__.get("_state_before_masks")
        if before is not None and not self.__dict__.get("_masks_used"):
            self.seed_generator.state.assign(before)
        object.__setattr__(self, "_state_before_masks", None)
        object.__setattr__(self, "_masks", None)

    def reset_recurrent_dropout_mask(self):
        pass

    # --- one step ------------------------------------------------------------

    def call(self, inputs, states, training=False):
        training = sampling(training)
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        hoisted = self.__dict__.get("_hoisted")
        if hoisted is not None:
            # Driven by a keras_reg sequence layer: the input side is done.
            masks, width = hoisted
            xw, keep_new = inputs, None
            if "zoneout" in masks:  # the per-step masks ride after xw
                xw, keep_new = inputs[..., :width], inputs[..., width:]
        else:
            inputs = _as_float(inputs, self.compute_dtype)
            masks = {}
            if training:
                masks = self._masks
                # Read by `reset_dropout_mask` after the loop (a trace-time
                # flag under `scan` and `tf.function`, which is all it needs).
                object.__setattr__(self, "_masks_used", True)
                if masks is None:  # called on its own, outside an RNN
                    batch, features = ops.shape(inputs)[0], ops.shape(inputs)[-1]
                    masks = self._draw_masks(batch, features, self.compute_dtype)
                if self._per_step_masks():
                    self._need_steps(None, "zoneout or share_input_mask=False")
            xw = self._project(inputs, masks.get("input"))
            keep_new = None
        kernel = masks.get("recurrent_kernel", self.recurrent_kernel)
        new_states = self._step(xw, states, masks.get("recurrent"), kernel)
        new_states = self._zoneout(states, new_states, keep_new, training)
        output = new_states[0]
        if "output" in masks:
            output = output * masks["output"]
        return output, new_states

    def _normalize(self, which, v):
        """The identity; `LayerNormCell` normalizes `v` here."""
        return v

    def _zoneout(self, old, new, keep_new, training):
        if not self._active["zoneout"]:
            return new
        if training and keep_new is not None:
            keep = ops.split(keep_new, len(new), axis=-1)
            return [
                ops.where(k > 0, n, o) for k, n, o in zip(keep, new, old, strict=True)
            ]
        # Inference: the expectation, z * old + (1 - z) * new.
        z = ops.divide(
            ops.cast(self.seed_generator.threshold(self._slot("zoneout")), "float32"),
            float(_random.ONE),
        )
        z = ops.cast(z, new[0].dtype)
        return [z * o + (1 - z) * n for o, n in zip(old, new, strict=True)]

    def get_config(self):
        config = {
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
            "output_dropout": self.output_dropout,
            "weight_dropout": self.weight_dropout,
            "zoneout": self.zoneout,
            "per_gate_masks": self.per_gate_masks,
            "share_input_mask": self.share_input_mask,
        }
        return {**super().get_config(), **config}


class LayerNormCell(VariationalCell):
    """Mixin: a variational cell whose pre-activations are layer-normalized.

    `LN(v) = gamma * (v - mean(v)) / sqrt(var(v) + epsilon) + beta` over
    the last axis, with the biased variance, computed in at least float32
    (Keras' `ops.layer_normalization`). The host cell's `build` calls
    `_add_norm(which, size, ...)` for each normalization, after the Keras
    cell's own weights, so the weights keep TensorFlow Addons' order.
    """

    _epsilon_arg = "norm_epsilon"

    def _init_norm(self, epsilon):
        self._norm_epsilon = check_positive_float(self._epsilon_arg, epsilon)
        object.__setattr__(self, "_norm_weights", {})

    def _add_norm(
        self,
        which,
        size,
        gamma_initializer,
        beta_initializer=None,
        gamma_regularizer=None,
        gamma_constraint=None,
    ):
        gamma = self.add_weight(
            shape=(size,),
            name=f"{which}_norm_gamma",
            initializer=gamma_initializer,
            regularizer=gamma_regularizer,
            constraint=gamma_constraint,
        )
        beta = None
        if beta_initializer is not None:
            beta = self.add_weight(
                shape=(size,), name=f"{which}_norm_beta", initializer=beta_initializer
            )
        self._norm_weights[which] = (gamma, beta)

    def _normalize(self, which, v):
        gamma, beta = self._norm_weights[which]
        return ops.layer_normalization(
            v, gamma=gamma, beta=beta, epsilon=self._norm_epsilon
        )


class GatedLayerNormCell(LayerNormCell):
    """LayerNorm arguments of the gated cells (TFA's `LayerNormLSTMCell`):
    one gamma and one beta initializer for every norm, `norm_epsilon`.

    The host cell lists its norms as `_norm_sizes`: `(which, units
    multiple)` pairs, built in that order after the Keras cell's weights.
    """

    _norm_sizes = ()

    def __init__(
        self,
        units,
        norm_gamma_initializer="ones",
        norm_beta_initializer="zeros",
        norm_epsilon=1e-3,
        **kwargs,
    ):
        super().__init__(units, **kwargs)
        self.norm_gamma_initializer = get_initializer(
            "norm_gamma_initializer", norm_gamma_initializer
        )
        self.norm_beta_initializer = get_initializer(
            "norm_beta_initializer", norm_beta_initializer
        )
        self._init_norm(norm_epsilon)

    def build(self, input_shape):
        super().build(input_shape)
        for which, multiple in self._norm_sizes:
            self._add_norm(
                which,
                multiple * self.units,
                self.norm_gamma_initializer,
                self.norm_beta_initializer,
            )

    @property
    def norm_epsilon(self):
        return self._norm_epsilon

    def get_config(self):
        return {
            **super().get_config(),
            "norm_gamma_initializer": keras.initializers.serialize(
                self.norm_gamma_initializer
            ),
            "norm_beta_initializer": keras.initializers.serialize(
                self.norm_beta_initializer
            ),
            "norm_epsilon": self.norm_epsilon,
        }


def norm_args_doc(epsilon_default):
    return f"""        norm_gamma_initializer: initializer of the LayerNorm scales.
            Defaults to `"ones"`.
        norm_beta_initializer: initializer of the LayerNorm offsets.
            Defaults to `"zeros"`.
        norm_epsilon: float > 0 added to the variance. Defaults to
            `{epsilon_default}`.
"""


def _as_float(x, dtype):
    """Integer features as floats, as Keras' recurrent layers take them (its
    autocast only converts floating inputs); the masks then scale exactly."""
    if keras.backend.is_float_dtype(x.dtype):
        return x
    return ops.cast(x, dtype)


def gated_matmul(x, mask, kernel):
    """`(x * mask) @ kernel`, with one mask per gate block when `mask` holds
    several (`mask[g]` multiplies `x` for the columns of gate `g`)."""
    if mask is None:
        return ops.matmul(x, kernel)
    gates = mask.shape[0]
    if gates == 1:
        return ops.matmul(x * mask[0], kernel)
    blocks = ops.split(kernel, gates, axis=-1)
    return ops.concatenate(
        [ops.matmul(x * mask[g], block) for g, block in enumerate(blocks)], axis=-1
    )


REG_ARGS = (
    "dropout",
    "recurrent_dropout",
    "output_dropout",
    "weight_dropout",
    "zoneout",
    "per_gate_masks",
    "share_input_mask",
    "seed",
)


def _forward(name):
    def get(self):
        return getattr(self.cell, name)

    def set(self, value):
        setattr(self.cell, name, value)

    return property(get, set, doc=f"The cell's `{name}`.")


class VariationalRNN(keras.layers.RNN):
    """Base of the sequence layers: the cell's loop, input side hoisted.

    With the cell's masks drawn once per call, `(x * m) @ kernel + bias`
    does not depend on the previous state, so it runs for all steps as one
    matmul before the loop; only `h @ recurrent_kernel` stays inside. Keras'
    own loop then runs the cell on the projected inputs, with masking,
    `go_backwards`, `unroll` and `stateful` exactly as in Keras.

    A subclass names its cell class (`_cell_class`); the Keras cell
    arguments it accepts are read from the Keras cell's signature, and it
    gets the matching constructor, properties and config.
    """

    _cell_class = None
    _cell_name = None
    _cell_args = ()
    _has_use_cudnn = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # The cell's own arguments (a LayerNorm cell's epsilon, ...), then
        # the Keras cell's, read from the constructors' signatures.
        own = {"self", "units", "kwargs", *REG_ARGS}
        names = []
        for klass in cls._cell_class.__mro__:
            if "__init__" in vars(klass):
                params = inspect.signature(klass.__init__).parameters
                names += [n for n in params if n not in own and n not in names]
            if klass.__module__.startswith("keras."):
                break
        cls._cell_args = tuple(names)
        for name in ("units", *cls._cell_args, *REG_ARGS):
            setattr(cls, name, _forward(name))

    def __init__(
        self,
        units,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        activity_regularizer=None,
        **kwargs,
    ):
        use_cudnn = kwargs.pop("use_cudnn", "auto") if self._has_use_cudnn else None
        cell_kwargs = {
            name: kwargs.pop(name)
            for name in (*self._cell_args, *REG_ARGS)
            if name in kwargs
        }
        cell = self._cell_class(
            units,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name=self._cell_name,
            **cell_kwargs,
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )
        self.input_spec = keras.InputSpec(ndim=3)
        if self._has_use_cudnn:
            # Accepted for compatibility with the Keras layer; per-sample
            # masks rule out cuDNN, so it changes nothing.
            self.use_cudnn = use_cudnn
        object.__setattr__(cell, "_driven", True)

    def get_config(self):
        cell_config = self.cell.get_config()
        config = {"units": self.units}
        if self._has_use_cudnn:
            config["use_cudnn"] = self.use_cudnn
        for name in (*self._cell_args, *REG_ARGS):
            config[name] = cell_config[name]
        base = super().get_config()
        del base["cell"]
        return {**base, **config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def call(self, sequences, initial_state=None, mask=None, training=False):
        # Keras' loop fails on an empty sequence with an IndexError deep in
        # the backend; say what is wrong before any mask is drawn.
        if sequences.shape[1] == 0:
            raise ValueError(
                f"{type(self).__name__} needs at least one time step. Received "
                f"a sequence of length 0: input shape {tuple(sequences.shape)}"
            )
        sequences = _as_float(sequences, self.compute_dtype)
        return super().call(
            sequences, initial_state=initial_state, mask=mask, training=training
        )

    def inner_loop(self, sequences, initial_state, mask, training=False):
        training = sampling(training)
        cell = self.cell
        batch, steps, features = ops.shape(sequences)
        masks = {}
        if training:
            masks = cell._draw_masks(batch, features, sequences.dtype, steps=steps)
        input_mask = masks.pop("input", None)
        if input_mask is not None and not cell.share_input_mask:
            # (steps, gates, batch, features) -> (gates, batch, steps, features)
            input_mask = ops.transpose(input_mask, (1, 2, 0, 3))
        elif input_mask is not None:
            input_mask = ops.expand_dims(input_mask, 2)
        xw = cell._project(sequences, input_mask)
        width = xw.shape[-1]
        zoneout = masks.get("zoneout")
        if zoneout is not None:
            xw = ops.concatenate([xw, ops.transpose(zoneout, (1, 0, 2))], axis=-1)
        object.__setattr__(cell, "_hoisted", (masks, width))
        try:
            return super().inner_loop(xw, initial_state, mask, training=training)
        finally:
            object.__setattr__(cell, "_hoisted", None)
