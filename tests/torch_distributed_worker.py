"""One rank of a `torch.distributed` run, started by test_data_parallel.py
(twice, with RANK, WORLD_SIZE=2, MASTER_ADDR and MASTER_PORT, as
`python -m torch.distributed.run --nproc_per_node 2` starts it):

python tests/torch_distributed_worker.py OUT_DIR

Every rank seeds Keras alike (`keras.utils.set_random_seed(0)`, as users
do), and writes OUT_DIR/rank{R}.npz with:
- each probe layer's training-mode output on ones (`zoo.probes()`);
- keep masks of (64, 1024) draws: seeded and unseeded `InvertedDropout`,
  the native-mode generator, Keras' own `Dropout`, a model inside DDP, and
  a seeded layer called through `torch.compile` (dynamo's capture, run by
  its "eager" backend: what reads the rank is the capture, and inductor's
  code generation costs a minute more per rank);
- `fsdp_*`: a Keras model under FSDP2 (`fully_shard`): the keep mask of its
  forward, and after a backward pass, whether FSDP's sharded parameters and
  Keras' own variables got gradients;
- `tensor_parallel`: a mask drawn with `set_data_parallel_rank(rank // 2)`
  (both ranks in one data-parallel group of two tensor-parallel shards);
- `resumed` / `continued`: the next mask of a model loaded from the
  checkpoint rank 0 wrote, and of the model that went on;
- the losses and weights of a short DDP training of the examples' model.
"""

import os
import sys

import keras
import numpy as np
import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras_reg  # noqa: E402
from examples import data_parallel_torch  # noqa: E402
from keras_reg import layers  # noqa: E402
from tests import zoo  # noqa: E402

ONES = np.ones((64, 1024), "float32")


def keep(layer_or_model):
    with torch.no_grad():
        return keras.ops.convert_to_numpy(layer_or_model(ONES, training=True)) != 0


def main(out_dir):
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    keras.utils.set_random_seed(0)
    results = {}
    for name, (layer, x) in zoo.probes().items():
        with torch.no_grad():
            results[name] = keras.ops.convert_to_numpy(layer(x, training=True))

    results["seeded"] = keep(layers.InvertedDropout(0.3, seed=1))
    results["unseeded"] = keep(layers.InvertedDropout(0.5))
    keras_reg.config.set_rng("native")
    results["native"] = keep(layers.InvertedDropout(0.5, seed=2))
    keras_reg.config.set_rng("portable")
    results["keras_dropout"] = keep(keras.layers.Dropout(0.5, seed=3))

    keras_reg.config.set_data_parallel_rank(lambda: dist.get_rank() // 2)
    results["tensor_parallel"] = keep(layers.InvertedDropout(0.5, seed=4))
    keras_reg.config.set_data_parallel_rank(None)

    # DDP broadcasts rank 0's state (the seeds too) at construction.
    ddp = torch.nn.parallel.DistributedDataParallel(
        keras.Sequential(
            [
                keras.Input((1024,)),
                keras.layers.Dense(1024, kernel_initializer="identity"),
                layers.InvertedDropout(0.5),
            ]
        )
    )
    results["ddp"] = keep(ddp)

    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    sharded = keras.Sequential(
        [
            keras.Input((1024,)),
            keras.layers.Dense(8),
            layers.InvertedDropout(0.5, seed=5),
        ]
    )
    fully_shard(sharded, mesh=init_device_mesh("cpu", (dist.get_world_size(),)))
    # The sharded model's forward (FSDP's hooks run around it), then a
    # backward pass: FSDP replaced the module's parameters with sharded
    # DTensors, while Keras computes with its own variables.
    results["fsdp"] = keep(sharded)
    loss = sharded(ONES, training=True).square().mean()
    loss.backward()
    results["fsdp_sharded_grads"] = np.array(
        [p.grad is not None for p in sharded.parameters()]
    )
    results["fsdp_keras_grads"] = np.array(
        [v.value.grad is not None for v in sharded.trainable_variables]
    )

    compiled = torch.compile(layers.InvertedDropout(0.5, seed=8), backend="eager")
    results["compiled"] = keep(compiled)

    # Resume: rank 0 writes the checkpoint, every rank loads it.
    model = keras.Sequential(
        [keras.Input((1024,)), layers.InvertedDropout(0.5, seed=6)]
    )
    keep(model)
    path = os.path.join(out_dir, "rank0.keras")
    if rank == 0:
        model.save(path)
    dist.barrier()
    results["resumed"] = keep(keras.saving.load_model(path))
    results["continued"] = keep(model)

    trained = data_parallel_torch.train(data_parallel_torch.load_data(), epochs=2)
    results["losses"] = np.array(trained["losses"])
    results["weights_spread"] = np.array(trained["weights_spread"])
    results["mask_agreement"] = np.array(trained["mask_agreement"])
    np.savez(os.path.join(out_dir, f"rank{rank}.npz"), **results)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
