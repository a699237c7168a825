"""The public layers of keras_reg."""

from keras_reg.layers.concrete import ConcreteDropout
from keras_reg.layers.dropout import (
    EmbeddingDropout,
    InvertedDropout,
    TimeSharedDropout,
)
from keras_reg.layers.noise import AlphaDropout, GaussianDropout, GaussianNoise
from keras_reg.layers.rnn.gru import (
    LayerNormGRU,
    LayerNormGRUCell,
    VariationalGRU,
    VariationalGRUCell,
)
from keras_reg.layers.rnn.layer_norm_wrapper import LayerNormWrapper
from keras_reg.layers.rnn.lstm import (
    LayerNormLSTM,
    LayerNormLSTMCell,
    VariationalLSTM,
    VariationalLSTMCell,
)
from keras_reg.layers.rnn.simple_rnn import (
    LayerNormSimpleRNN,
    LayerNormSimpleRNNCell,
    VariationalSimpleRNN,
    VariationalSimpleRNNCell,
)
from keras_reg.layers.structured import (
    DropBlock1D,
    DropBlock2D,
    DropBlock3D,
    DropPath,
    StochasticDepth,
    drop_path_rates,
)

__all__ = [
    "AlphaDropout",
    "ConcreteDropout",
    "DropBlock1D",
    "DropBlock2D",
    "DropBlock3D",
    "DropPath",
    "EmbeddingDropout",
    "GaussianDropout",
    "GaussianNoise",
    "InvertedDropout",
    "LayerNormGRU",
    "LayerNormGRUCell",
    "LayerNormLSTM",
    "LayerNormLSTMCell",
    "LayerNormSimpleRNN",
    "LayerNormSimpleRNNCell",
    "LayerNormWrapper",
    "StochasticDepth",
    "TimeSharedDropout",
    "VariationalGRU",
    "VariationalGRUCell",
    "VariationalLSTM",
    "VariationalLSTMCell",
    "VariationalSimpleRNN",
    "VariationalSimpleRNNCell",
    "drop_path_rates",
]
