"""The public layers of keras_reg."""

from keras_reg.layers.dropout import (
    EmbeddingDropout,
    InvertedDropout,
    TimeSharedDropout,
)
from keras_reg.layers.rnn.gru import VariationalGRU, VariationalGRUCell
from keras_reg.layers.rnn.lstm import VariationalLSTM, VariationalLSTMCell
from keras_reg.layers.rnn.simple_rnn import (
    VariationalSimpleRNN,
    VariationalSimpleRNNCell,
)
from keras_reg.layers.structured import DropBlock2D, DropPath

__all__ = [
    "DropBlock2D",
    "DropPath",
    "EmbeddingDropout",
    "InvertedDropout",
    "TimeSharedDropout",
    "VariationalGRU",
    "VariationalGRUCell",
    "VariationalLSTM",
    "VariationalLSTMCell",
    "VariationalSimpleRNN",
    "VariationalSimpleRNNCell",
]
