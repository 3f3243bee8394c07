"""Training on several processes or machines: torchrun's environment, DistributedDataParallel, one writer.

A trainer started by ``torchrun --nproc-per-node N [--nnodes M ...] -m perceptlab train ...`` runs as
``N * M`` processes that train one model together. :func:`world` tells a process where it stands; without
torchrun's variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), or with a world of one process, it is a
single process and every method here does nothing, so a single-process run is exactly what it was.

What the processes share, and how (the trainers and :func:`perceptlab.training.train_loop` do the rest):

- **Data.** Every process draws the whole global batch (the configuration's ``batch_size``) from the same
  seeded generator and keeps its own slice (:meth:`World.shard`, ``ImageCrops.sample_crops(shard=...)``):
  the slices of N processes are the batch one process draws, and the generators stay in step.
- **Gradients.** Averaged over the processes, by ``DistributedDataParallel`` for the network being trained
  (:meth:`World.data_parallel`) and by :meth:`World.average_gradients` for a discriminator, whose
  gradients only its own step uses. Our losses are means over the batch, so the average of the processes'
  gradients is the gradient of the global batch's loss and the learning rate means what it means with one
  process.
- **BatchNorm.** Statistics of the global batch (:class:`GlobalBatchNorm`, all-reduced sums), so that a
  network with BatchNorm trains as with one process; the running statistics stay the same everywhere.
- **torch's global random stream** (the feature loss's ``jitter``, the codec's training noise): seeded per
  process and per step (:meth:`World.seed_step`), so that processes draw independent noise and a resumed
  run draws the same; a run that uses it matches a one-process run in distribution, not draw for draw.
- **Files.** Process 0 alone reads and writes the run folder (config, checkpoints, metrics, samples, the
  model file): the checkpoint it resumes from is broadcast (:meth:`World.from_main`), so other machines
  need the data but not the run folder.
- **Stopping.** A held SIGINT or SIGTERM on any process stops all of them after the same step
  (:meth:`World.max` in :class:`perceptlab.training.Checkpoints`); process 0 saves, and the others wait
  for it (:meth:`World.barrier`) before they exit.

Processes compute on ``cuda:LOCAL_RANK`` with the NCCL backend when CUDA is available (one process per
GPU), else on the CPU with Gloo.
"""

from __future__ import annotations

import atexit
import os
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class World:
    """The processes of a run and this one's place among them (one process: the defaults).

    Attributes:
        rank: this process's number, 0 to ``size - 1``; process 0 writes the run folder.
        size: the number of processes.
        local_rank: the number among the processes of this machine (its GPU).
        device: where this process computes: ``cuda:LOCAL_RANK``, or the CPU.
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        """Whether this is process 0, the one that writes files and shows progress."""
        return self.rank == 0

    def shard(self, batch_size: int) -> tuple[int, int]:
        """``(rank, size)``: this process's part of a global batch of ``batch_size``.

        Raises:
            ValueError: ``batch_size`` is not a multiple of the number of processes.
        """
        if batch_size % self.size:
            raise ValueError(f"batch_size {batch_size} cannot be split evenly across {self.size} processes: "
                             f"make it a multiple of {self.size} (it is the global batch)")  # fmt: skip
        return self.rank, self.size

    def data_parallel(self, module: nn.Module) -> nn.Module:
        """``module`` on this process's device, with global BatchNorm, wrapped in ``DistributedDataParallel``.

        Call the returned module in the training step (its backward averages the gradients); save and
        sample ``module`` itself. One process: ``module`` as it is.
        """
        if self.size == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        module.to(self.device)
        global_batchnorm(module)
        # Buffers are made the same at the start, not before every forward: the only buffers training changes
        # are BatchNorm's running statistics, which GlobalBatchNorm computes from the same sums everywhere.
        return DistributedDataParallel(module, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                                       forward_sync_buffers=False)  # fmt: skip

    def replicate(self, module: nn.Module) -> nn.Module:
        """``module`` on this device, with global BatchNorm and process 0's weights, for :meth:`average_gradients`.

        For a network whose gradients only one of several backward passes of a step should average (a
        discriminator: the generator's step also leaves gradients in it, which its own step drops).
        """
        if self.size == 1:
            return module
        import torch.distributed as dist

        module.to(self.device)
        global_batchnorm(module)
        with torch.no_grad():
            for tensor in (*module.parameters(), *module.buffers()):
                dist.broadcast(tensor, src=0)
        return module

    def average_gradients(self, module: nn.Module) -> None:
        """Replace the gradients of ``module``'s parameters by their mean over the processes (one all-reduce)."""
        if self.size == 1:
            return
        import torch.distributed as dist

        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.size
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def mean(self, values: Mapping[str, float]) -> dict[str, float]:
        """The mean over the processes of each value (the loss parts a step logs); the same dict for one process."""
        if self.size == 1:
            return dict(values)
        import torch.distributed as dist

        tensor = torch.tensor(list(values.values()), dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return dict(zip(values, (tensor / self.size).tolist()))

    def max(self, value: int) -> int:
        """The largest of the processes' ``value`` (for one process, ``value``)."""
        if self.size == 1:
            return value
        import torch.distributed as dist

        tensor = torch.tensor([value], dtype=torch.int64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return int(tensor.item())

    def barrier(self) -> None:
        """Wait until every process gets here."""
        self.max(0)  # an all-reduce: the same on Gloo and NCCL, and no device to name

    def from_main(self, fn: Callable[[], object]):
        """``fn()`` run by process 0 alone, its result (or the exception it raised) given to every process.

        For what touches the run folder: the other processes neither need the folder nor wait forever
        when process 0 refuses it; they raise the same error.
        """
        if self.size == 1:
            return fn()
        import torch.distributed as dist

        box: list = [None]
        error = None
        if self.main:
            try:
                box[0] = (True, fn())
            except Exception as exc:  # given to the others, then raised here with its traceback
                error = exc
                box[0] = (False, _portable(exc))
        dist.broadcast_object_list(box, src=0, device=self.device if self.device.type == "cuda" else None)
        ok, value = box[0]
        if error is not None:
            raise error
        if not ok:
            raise value
        return value

    def seed_step(self, seed: int, step: int) -> None:
        """Seed torch's global random stream for ``step`` of this process (several processes only).

        Processes must not draw the same noise for their different slices of the batch, and a run resumed
        at ``step`` must draw what the uninterrupted run drew: the seed depends on (seed, step, rank) alone.
        """
        if self.size == 1:
            return
        entropy = np.random.SeedSequence([seed & (2**64 - 1), step, self.rank])
        torch.manual_seed(int(entropy.generate_state(1, np.uint64)[0]))

    def hosted(self, module: nn.Module) -> Callable:
        """``module`` as a function of CPU tensors that returns CPU tensors (for samples and validation).

        ``module`` itself when this process computes on the CPU.
        """
        if self.device.type == "cpu":
            return module
        device = self.device

        def call(*inputs):
            return _to_cpu(module(*(x.to(device) for x in inputs)))

        return call


_WORLD: World | None = None


def world() -> World:
    """This process's :class:`World`: torchrun's processes when its variables are set, else one.

    The first call with torchrun's variables starts the process group (NCCL on ``cuda:LOCAL_RANK``
    when CUDA is available, else Gloo on the CPU; ``MASTER_ADDR``/``MASTER_PORT`` come from torchrun).

    Raises:
        ValueError: more processes on this machine than it has GPUs.
    """
    global _WORLD
    if _WORLD is None:
        _WORLD = _start()
    return _WORLD


def _start() -> World:
    if not all(name in os.environ for name in TORCHRUN_VARIABLES) or int(os.environ["WORLD_SIZE"]) == 1:
        return World()
    import torch.distributed as dist

    rank, size, local_rank = (int(os.environ[name]) for name in TORCHRUN_VARIABLES)
    if torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"process {local_rank} of this machine has no GPU (it has {torch.cuda.device_count()}): "
                             "start one process per GPU (--nproc-per-node)")  # fmt: skip
        device, backend = torch.device("cuda", local_rank), "nccl"
        torch.cuda.set_device(device)
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=size)
        atexit.register(_stop)
    return World(rank=rank, size=size, local_rank=local_rank, device=device)


def _stop() -> None:
    """End the process group while Python still runs: Gloo's worker threads may hold tensors of the last
    collectives, and freeing them during interpreter shutdown can abort the process (pytorch#179291).
    DDP wrappers caught in reference cycles are collected first, so that nothing holds the group after."""
    import gc

    import torch.distributed as dist

    gc.collect()
    if dist.is_initialized():
        dist.destroy_process_group()


def _portable(exc: Exception) -> Exception:
    """``exc`` if it survives pickling (to be raised on the other processes), else a RuntimeError saying it."""
    try:
        return pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"process 0: {type(exc).__name__}: {exc}")


def _to_cpu(value):
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, Mapping):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


# ------------------------------------------------------------------ BatchNorm over the global batch


class _AllReduceSum(torch.autograd.Function):
    """Sum over the processes, differentiable: the gradient of each process's input is the sum of the
    processes' output gradients (every process's loss depends on every input through the sum)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return _AllReduceSum.apply(grad.contiguous())


class GlobalBatchNorm(nn.BatchNorm2d):
    """``BatchNorm2d`` that normalises with the statistics of the global batch in training mode.

    Each process sums, per channel and in float64, ``x - s`` and ``(x - s)^2`` over its slice, with ``s``
    the running mean (the same on every process); one all-reduce gives every process the global mean
    and variance, and the gradients flow back through it (one all-reduce more), as in PyTorch's
    ``SyncBatchNorm``: N processes with B / N images each compute what one process computes with B, up
    to rounding. The shift keeps ``E[(x - s)^2] - E[x - s]^2`` from cancelling once the running mean
    follows the batches; before that (``s = 0``), a channel whose mean is m standard deviations away
    loses about 6e-8 * (1 + m^2) of its variance's precision. The running statistics are updated from
    the global statistics, identically on every process. In eval mode, or without a process group, it
    is ``BatchNorm2d``. Works on the CPU (Gloo), where ``SyncBatchNorm`` does not, and on GPUs; same
    parameters, buffers and state-dict keys as ``BatchNorm2d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        if not self.training or not dist.is_initialized() or dist.get_world_size() == 1:
            return super().forward(x)
        self._check_input_dim(x)
        c, dims, shape = x.shape[1], (0, 2, 3), (1, x.shape[1], 1, 1)
        shift = x.new_zeros(c) if self.running_mean is None else self.running_mean.detach().clone()
        d = x - shift.view(shape)
        count = torch.full((1,), x.numel() // c, dtype=torch.float64, device=x.device)
        sums = _AllReduceSum.apply(torch.cat([d.sum(dims, dtype=torch.float64),
                                              d.square().sum(dims, dtype=torch.float64), count]))  # fmt: skip
        n = sums[-1]
        offset = sums[:c] / n  # the mean minus the shift
        var = (sums[c : 2 * c] / n - offset.square()).clamp_min(0.0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - momentum).add_((shift + offset).to(x.dtype), alpha=momentum)
                self.running_var.mul_(1 - momentum).add_((var * n / (n - 1).clamp_min(1)).to(x.dtype), alpha=momentum)
        y = (d - offset.to(x.dtype).view(shape)) * torch.rsqrt(var.to(x.dtype) + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def global_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` inside ``module`` by a :class:`GlobalBatchNorm` sharing its parameters
    and buffers (an optimizer built before keeps working; state-dict keys do not change). In place."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            new = GlobalBatchNorm(child.num_features, eps=child.eps, momentum=child.momentum, affine=child.affine,
                                  track_running_stats=child.track_running_stats)  # fmt: skip
            for key, value in (*child.named_parameters(recurse=False), *child.named_buffers(recurse=False)):
                setattr(new, key, value)
            new.train(child.training)
            setattr(module, name, new)
        else:
            global_batchnorm(child)
    return module
