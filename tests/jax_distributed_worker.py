"""JAX data and model parallelism, started by test_data_parallel.py.

python tests/jax_distributed_worker.py processes PORT PROCESS_ID OUT.npz
    One of two processes (`keras.distribution.initialize`, gloo CPU
    collectives, coordinator on 127.0.0.1:PORT), one CPU device each,
    under `keras.distribution.DataParallel`. Each process feeds its half
    of every global batch. Writes the probe layers' training-mode outputs
    on the global batch of ones (gathered from both processes), the keep
    mask of Keras' own `Dropout` on a (128, 1024) global batch, and the
    weights after a `fit` of `backend_worker.resume_model()`.

python tests/jax_distributed_worker.py mesh OUT.npz
    One process, four CPU devices (the caller sets
    XLA_FLAGS=--xla_force_host_platform_device_count=4). Writes:
    - `model_parallel/<probe>`: each device's shard of the output of a
      probe under `ModelParallel` on a (data=2, model=2) mesh, with the
      input sharded on the data axis and replicated on the model axis,
      stacked in device order of the mesh, `(2, 2, *shard_shape)`;
    - `sharded/<probe>`: the whole output for an input sharded on both
      axes (the batch on `data`, the last axis on `model`; not DropBlock2D,
      whose 3 channels do not split in two);
    - `data_parallel/<probe>`: the whole output under `DataParallel`
      over the four devices.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests import backend_worker, zoo  # noqa: E402


def global_batch(x, processes):
    """The global batch of a probe: `processes` copies of its input."""
    return np.concatenate([x] * processes)


def run(layer, array):
    """The layer's training-mode output, jitted (one SPMD program)."""
    layer.build(array.shape)

    @jax.jit
    def call(trainable, non_trainable, x):
        return layer.stateless_call(trainable, non_trainable, x, training=True)[0]

    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]
    return call(trainable, non_trainable, array)


def processes(port, process_id, out):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    keras.distribution.initialize(f"127.0.0.1:{port}", 2, int(process_id))
    from jax.experimental import multihost_utils

    devices = jax.devices()
    assert len(devices) == 2 and len(jax.local_devices()) == 1, devices
    distribution = keras.distribution.DataParallel(devices=devices)
    distribution.auto_shard_dataset = False  # each process feeds its half
    keras.distribution.set_distribution(distribution)
    results = {}
    for name, (layer, x) in zoo.probes().items():
        shape = global_batch(x, 2).shape
        layout = distribution.get_data_layout(shape).backend_layout
        array = jax.make_array_from_process_local_data(layout, x)
        y = run(layer, array)
        results[name] = np.asarray(multihost_utils.process_allgather(y, tiled=True))
    # Keras' own Dropout, for docs/known-issues.md.
    ones = np.ones((64, 1024), "float32")
    layout = distribution.get_data_layout((128, 1024)).backend_layout
    y = run(
        keras.layers.Dropout(0.5, seed=3),
        jax.make_array_from_process_local_data(layout, ones),
    )
    results["keras_dropout"] = (
        np.asarray(multihost_utils.process_allgather(y, tiled=True)) != 0
    )
    # Each process feeds its half of every global batch of 8.
    model = backend_worker.resume_model()
    backend_worker.compile_for_resume(model)
    ids, target = backend_worker.resume_data()
    half = slice(4 * int(process_id), 4 * int(process_id) + 4)
    local_ids = ids.reshape(3, 8, -1)[:, half].reshape(12, -1)
    local_target = target.reshape(3, 8, -1)[:, half].reshape(12, -1)
    history = model.fit(
        local_ids, local_target, batch_size=4, epochs=1, shuffle=False, verbose=0
    )
    results["losses"] = np.array(history.history["loss"])
    for i, weight in enumerate(model.weights):
        results[f"weight_{i}"] = np.asarray(
            multihost_utils.process_allgather(weight.value, tiled=True)
        )
    np.savez(out, **results)


def mesh(out):
    devices = jax.devices()
    assert len(devices) == 4, devices
    grid = keras.distribution.DeviceMesh((2, 2), ["data", "model"], devices)
    distribution = keras.distribution.ModelParallel(
        layout_map=keras.distribution.LayoutMap(grid), batch_dim_name="data"
    )
    results = {}
    with distribution.scope():
        for name, (layer, x) in zoo.probes().items():
            x = global_batch(x, 2)
            rest = [None] * (x.ndim - 1)
            replicated = keras.distribution.TensorLayout(["data", *rest], grid)
            y = run(layer, jax.device_put(x, replicated.backend_layout))
            shards = {
                shard.device: np.asarray(shard.data) for shard in y.addressable_shards
            }
            results[f"model_parallel/{name}"] = np.stack(
                [[shards[d] for d in row] for row in grid.devices]
            )
            if x.shape[-1] % 2:
                continue  # DropBlock2D's 3 channels do not split in two
            both = keras.distribution.TensorLayout(["data", *rest[:-1], "model"], grid)
            y = run(layer, jax.device_put(x, both.backend_layout))
            results[f"sharded/{name}"] = np.asarray(y)
    distribution = keras.distribution.DataParallel(devices=devices)
    with distribution.scope():
        for name, (layer, x) in zoo.probes().items():
            x = global_batch(x, 2)
            layout = distribution.get_data_layout(x.shape).backend_layout
            y = run(layer, jax.device_put(x, layout))
            assert len(y.sharding.device_set) == 4, y.sharding
            results[f"data_parallel/{name}"] = np.asarray(y)
    np.savez(out, **results)


if __name__ == "__main__":
    {"processes": processes, "mesh": mesh}[sys.argv[1]](*sys.argv[2:])
