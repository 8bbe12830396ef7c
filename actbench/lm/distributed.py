"""A trial on several workers (Ray Train sets up torch.distributed): which rank this process is,
the model wrapped for data parallelism (DDP) or sharded (FSDP2 `fully_shard`), gradient sync
only on a step's last micro-step, and whole state dicts that one process can save and load."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch

from actbench.lm.model import Llama


@dataclass(frozen=True)
class Ranks:
    """This process's place among the workers of a trial: one process is rank 0 of 1."""

    rank: int = 0
    world: int = 1
    strategy: str = "ddp"  # ddp: every rank holds the model; fsdp: parameters, gradients and optimizer state sharded

    @property
    def sharded(self) -> bool:
        return self.world > 1 and self.strategy == "fsdp"

    def gather(self, obj: Any) -> list[Any]:
        """`obj` of every rank, in rank order (a collective: every rank calls it)."""
        out: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def from_rank0(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank (a collective)."""
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]


def current_ranks(strategy: str = "ddp") -> Ranks:
    """The ranks of torch.distributed's default group when it is set up (Ray Train), else one process."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return Ranks(torch.distributed.get_rank(), torch.distributed.get_world_size(), strategy)
    return Ranks(strategy=strategy)


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a (possibly FSDP-sharded) parameter or value computed from one."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t



def parallel(model: Llama, ranks: Ranks, device: torch.device) -> torch.nn.Module:
    """What the training step calls: the model itself on one worker; on several, DDP around it
    (every rank holds the model; gradients averaged) or the model with its blocks and itself
    sharded by FSDP2 `fully_shard` (parameters in fp32, as on one worker; autocast as usual)."""
    if ranks.world == 1:
        return model
    if ranks.strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in model.blocks:
            fully_shard(block)
        return fully_shard(model)
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None, forward_sync_buffers=False)


def grad_sync(wrapped: torch.nn.Module, ranks: Ranks, sync: bool) -> Any:
    """A context for one micro-step's backward: gradients are reduced across ranks only in the
    step's last micro-step (before it they add up locally)."""
    if ranks.sharded:
        wrapped.set_requires_gradient_sync(sync)
    elif ranks.world > 1 and not sync:
        return wrapped.no_sync()
    return contextlib.nullcontext()


def _optimizer_order(model: torch.nn.Module, opt: torch.optim.Optimizer) -> list[str]:
    """Parameter names in the optimizer's order: the ids of a plain optimizer state dict."""
    name = {id(p): n for n, p in model.named_parameters()}
    return [name[id(p)] for group in opt.param_groups for p in group["params"]]


def state_dicts(model: torch.nn.Module, opt: torch.optim.Optimizer, ranks: Ranks) -> tuple[dict[str, Any], dict[str, Any]]:
    """Whole model and optimizer state dicts, as one process saves them (a collective under FSDP,
    whose values are then on rank 0 only)."""
    if not ranks.sharded:
        return model.state_dict(), opt.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    msd, osd = get_model_state_dict(model, options=options), get_optimizer_state_dict(model, opt, options=options)
    if ranks.rank:
        return {}, {}
    ids = {n: i for i, n in enumerate(_optimizer_order(model, opt))}
    return msd, {"state": {ids[n]: v for n, v in osd["state"].items()},
                 "param_groups": [{**g, "params": [ids[n] for n in g["params"]]} for g in osd["param_groups"]]}


def load_optimizer(model: torch.nn.Module, opt: torch.optim.Optimizer, saved: dict[str, Any], ranks: Ranks) -> None:
    """Load a saved (plain, whole) optimizer state into this worker's optimizer."""
    if not ranks.sharded:
        opt.load_state_dict(saved)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    names = _optimizer_order(model, opt)
    by_name = {"state": {names[i]: v for i, v in saved["state"].items()},
               "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in saved["param_groups"]]}
    set_optimizer_state_dict(model, opt, by_name, options=StateDictOptions(full_state_dict=True))
