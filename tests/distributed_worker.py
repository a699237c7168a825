"""Data-parallel runs over two CPU devices, started by test_portability.py.

python tests/distributed_worker.py OUT.npz

The devices must exist before the backend starts, hence a subprocess:
- KERAS_BACKEND=tensorflow: `tf.distribute.MirroredStrategy` over two
  logical CPU devices, one step per replica.
- KERAS_BACKEND=jax: `keras.distribution.DataParallel` over two host
  devices (the caller sets XLA_FLAGS=--xla_force_host_platform_device_count=2),
  one program over the global batch, split across the devices.

Writes, for each probe layer of `zoo.probes()`, its training-mode output on
ones as `(replicas, *per_replica_shape)`, and the losses of a short `fit` of
a model with every dropout-family layer.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
BACKEND = os.environ["KERAS_BACKEND"]

if BACKEND == "tensorflow":
    import tensorflow as tf

    _cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        _cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests import backend_worker, zoo  # noqa: E402


def tensorflow_run():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    results = {}
    with strategy.scope():
        cases = zoo.probes()
        for layer, x in cases.values():
            layer.build(x.shape)
    for name, (layer, x) in cases.items():
        step = tf.function(lambda x, layer=layer: layer(x, training=True))
        outputs = strategy.run(step, args=(tf.constant(x),))
        results[name] = np.stack(
            [o.numpy() for o in strategy.experimental_local_results(outputs)]
        )
    with strategy.scope():
        model = backend_worker.resume_model()
        backend_worker.compile_for_resume(model)
    return results, model


def jax_run():
    import jax

    devices = jax.devices()
    assert len(devices) == 2, devices
    distribution = keras.distribution.DataParallel(devices=devices)
    keras.distribution.set_distribution(distribution)
    results = {}
    for name, (layer, x) in zoo.probes().items():
        # The global batch is two per-replica batches; the data layout
        # puts one on each device.
        global_x = np.concatenate([x, x])
        layout = distribution.get_data_layout(global_x.shape).backend_layout
        y = layer(jax.device_put(global_x, layout), training=True)
        assert len(y.sharding.device_set) == 2, y.sharding
        results[name] = np.stack(np.split(np.asarray(y), 2))
    model = backend_worker.resume_model()
    backend_worker.compile_for_resume(model)
    return results, model


def main(out):
    results, model = {"tensorflow": tensorflow_run, "jax": jax_run}[BACKEND]()
    x, y = backend_worker.resume_data()
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    results["losses"] = np.array(history.history["loss"])
    results["weights_finite"] = np.array(
        all(np.all(np.isfinite(w)) for w in model.get_weights())
    )
    np.savez(out, **results)


if __name__ == "__main__":
    main(sys.argv[1])
