"""The rank of a `torch.distributed` process group, for `replica_id`.

Kept apart from `_torch.py` (the fast kernels): DDP and every launcher
(`torchrun`, `python -m torch.distributed.run`, `mp.spawn`) start one
process per replica, each with the same random streams (DDP even
broadcasts rank 0's state), so the global rank is mixed into every draw.
Read at every eager draw and every `torch.compile`d call (FSDP cannot
shard a Keras model: docs/guides/several-devices.md).

Reading it is cheap and local: `is_initialized` and `get_rank` read the
default group that `init_process_group` stored; no collective runs.
"""

import torch.distributed as dist


def replica_id():
    """The global rank, or None outside an initialized group of 2 or more."""
    if not dist.is_available() or not dist.is_initialized():
        return None
    if dist.get_world_size() < 2:
        return None
    return dist.get_rank()
