"""One worker of a `tf.distribute.MultiWorkerMirroredStrategy` run, started
by test_data_parallel.py (TF_CONFIG names two workers on 127.0.0.1):

python tests/tf_multiworker_worker.py OUT.npz

One CPU replica per worker. Writes the global replica index the strategy
reports, each probe layer's training-mode output on ones (`zoo.probes()`),
keep masks of a (64, 1024) draw of `InvertedDropout` and of Keras' own
`Dropout`, and the losses and weights after two epochs of custom
training steps of `backend_worker.resume_model()` on a global batch of 8.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

# Created first: the strategy must start before any other TensorFlow op.
STRATEGY = tf.distribute.MultiWorkerMirroredStrategy()

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_reg import layers  # noqa: E402
from tests import backend_worker, zoo  # noqa: E402

ONES = np.ones((64, 1024), "float32")


def local(layer, x):
    """The layer's training-mode output on this worker's replica."""
    step = tf.function(lambda x: layer(x, training=True))
    (output,) = STRATEGY.experimental_local_results(
        STRATEGY.run(step, args=(tf.constant(x),))
    )
    return output.numpy()


def main(out):
    assert STRATEGY.num_replicas_in_sync == 2, STRATEGY.num_replicas_in_sync
    replica = STRATEGY.run(
        tf.function(
            lambda: tf.distribute.get_replica_context().replica_id_in_sync_group
        )
    )
    results = {"replica": np.array(STRATEGY.experimental_local_results(replica))}
    with STRATEGY.scope():
        cases = zoo.probes()
        for layer, x in cases.values():
            layer.build(x.shape)
        seeded = layers.InvertedDropout(0.3, seed=1)
        keras_dropout = keras.layers.Dropout(0.5, seed=3)
    for name, (layer, x) in cases.items():
        results[name] = local(layer, x)
    results["seeded"] = local(seeded, ONES) != 0
    results["keras_dropout"] = local(keras_dropout, ONES) != 0

    with STRATEGY.scope():
        model = backend_worker.resume_model()
        optimizer = keras.optimizers.SGD(0.05)
        optimizer.build(model.trainable_variables)
    ids, target = backend_worker.resume_data()
    task = STRATEGY.cluster_resolver.task_id

    @tf.function
    def step(ids, target):
        # A custom step (Keras 3.15.1's `fit` fails under this strategy
        # with a PerReplica conversion error): mean gradient over replicas.
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(ids, training=True) - target))
        grads = tape.gradient(loss, model.trainable_variables)
        context = tf.distribute.get_replica_context()
        grads = context.all_reduce("mean", grads)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    losses = []
    for _ in range(2):
        epoch = []
        for start in range(0, 24, 8):
            # This worker's half of the global batch of 8.
            half = slice(start + 4 * task, start + 4 * task + 4)
            loss = STRATEGY.run(step, args=(ids[half], target[half]))
            epoch.append(STRATEGY.experimental_local_results(loss)[0].numpy())
        losses.append(np.mean(epoch))
    results["losses"] = np.array(losses)
    for i, weight in enumerate(model.get_weights()):
        results[f"weight_{i}"] = weight
    np.savez(out, **results)


if __name__ == "__main__":
    main(sys.argv[1])
