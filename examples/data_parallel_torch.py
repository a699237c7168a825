"""Data-parallel training on torch: one process per replica, on the CPU.

A digits MLP with `keras_reg.layers.InvertedDropout` inside torch's
`DistributedDataParallel`, as in Keras' guide to distributed training with
torch. Each rank trains on its own half of every batch; DDP averages the
gradients, so the weights stay the same on every rank. keras_reg mixes the
global rank into every draw, so the ranks drop *different* units (with the
same masks on every rank, dropout loses much of its effect).

    torchrun --nproc_per_node 2 examples/data_parallel_torch.py
    python -m torch.distributed.run --nproc_per_node 2 \\
        examples/data_parallel_torch.py --epochs 5

On a GPU machine, use the "nccl" backend and move each rank's model and
batches to `cuda:LOCAL_RANK`; nothing else changes.
"""

import argparse
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras_reg  # noqa: E402


def load_data(seed=0):
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target.astype("int64")
    return train_test_split(x, y, train_size=600, random_state=seed, stratify=y)


def build_model(rate=0.5):
    """A 64-256-256-10 MLP with InvertedDropout after each hidden layer,
    returning logits."""
    inputs = keras.Input((64,), name="pixels")
    x = inputs
    for i in range(2):
        x = keras.layers.Dense(256, activation="relu", name=f"dense_{i}")(x)
        x = keras_reg.layers.InvertedDropout(rate, seed=i, name=f"dropout_{i}")(x)
    outputs = keras.layers.Dense(10, name="logits")(x)
    return keras.Model(inputs, outputs, name="mlp_data_parallel")


def mask_agreement(model, rank):
    """The fraction of units that `dropout_0` keeps or drops alike on rank 0
    and on this rank, for one draw on ones (1.0 on rank 0 itself; about
    `keep**2 + drop**2`, 0.5 at rate 0.5, for independent masks)."""
    layer = model.get_layer("dropout_0")
    keep = (layer(torch.ones(64, 256), training=True) != 0).to(torch.float32)
    reference = keep.clone()
    dist.broadcast(reference, src=0)
    return float((keep == reference).to(torch.float32).mean())


def weights_spread(model):
    """The largest difference of any weight between the ranks (0.0 when DDP
    keeps them in sync)."""
    spread = 0.0
    for weight in model.trainable_weights:
        value = weight.value.detach()
        high, low = value.clone(), value.clone()
        dist.all_reduce(high, op=dist.ReduceOp.MAX)
        dist.all_reduce(low, op=dist.ReduceOp.MIN)
        spread = max(spread, float((high - low).abs().max()))
    return spread


def train(data, epochs, batch_size=64, learning_rate=2e-3):
    """Trains on this rank's half of every global batch; returns the
    per-epoch mean loss (of this rank), the validation accuracy, the weights'
    spread across ranks and the mask agreement with rank 0."""
    rank, world = dist.get_rank(), dist.get_world_size()
    x_train, x_val, y_train, y_val = data
    keras.utils.set_random_seed(0)  # the same on every rank, as usual
    model = build_model()
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.Adam(ddp.parameters(), lr=learning_rate)
    order = np.random.default_rng(0)
    losses = []
    for _ in range(epochs):
        permutation = order.permutation(len(x_train))
        epoch = []
        for start in range(0, len(permutation), batch_size):
            # Every rank takes its own slice of the same global batch.
            batch = permutation[start : start + batch_size][rank::world]
            x = torch.as_tensor(x_train[batch])
            y = torch.as_tensor(y_train[batch])
            loss = torch.nn.functional.cross_entropy(ddp(x, training=True), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            epoch.append(float(loss.detach()))
        losses.append(float(np.mean(epoch)))
    with torch.no_grad():
        logits = model(torch.as_tensor(x_val), training=False)
        val_acc = float((logits.argmax(-1).numpy() == y_val).mean())
        return {
            "losses": losses,
            "val_acc": val_acc,
            "weights_spread": weights_spread(model),
            "mask_agreement": mask_agreement(model, rank),
        }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    dist.init_process_group("gloo")  # torchrun sets the rank and address
    try:
        rank = dist.get_rank()
        result = train(load_data(), args.epochs)
        for r in range(dist.get_world_size()):
            if r == rank:
                print(
                    f"rank {rank}: loss {result['losses'][0]:.3f} -> "
                    f"{result['losses'][-1]:.3f}, val accuracy "
                    f"{result['val_acc']:.3f}, weights spread "
                    f"{result['weights_spread']:.1e}, mask agreement with "
                    f"rank 0 {result['mask_agreement']:.3f}",
                    flush=True,
                )
            dist.barrier()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
