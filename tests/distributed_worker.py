"""Run by tests/test_distributed.py under torchrun: 2 CPU processes talking through gloo.

    python -m torch.distributed.run --nproc_per_node=2 tests/distributed_worker.py train OUT_DIR
    python -m torch.distributed.run --nproc_per_node=2 tests/distributed_worker.py fail OUT_DIR
"""

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from course_utils import data, distributed, training
from course_utils.history import History

PER_PROCESS_BATCH = 32


def small_cnn() -> nn.Module:
    """No BatchNorm: PyTorch's SyncBatchNorm runs on GPUs only, and per-process BatchNorm would
    (rightly) make 2 x 32 differ from 1 x 64. Everything else of the data-parallel path is the same."""
    training.seed_everything(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                         nn.Linear(8 * 16, 10))


def train(out: Path, batch_size: int, fail_on_rank: int | None = None) -> History:
    subset = data.load_cifar10(download=False).subset(256, 100, seed=0)
    loader = data.TensorLoader(subset.train_images, subset.train_labels, batch_size=batch_size, seed=0)
    test = data.TensorLoader(subset.test_images, subset.test_labels, batch_size=50, augment=False, shuffle=False)
    model = small_cnn()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    def loss_fn(logits, labels):
        if fail_on_rank is not None and dist.get_rank() == fail_on_rank:
            raise RuntimeError(f"deliberate failure on rank {fail_on_rank}")
        return nn.functional.cross_entropy(logits, labels)

    history = training.fit(model, loader, epochs=2, optimizer=optimizer, val_loader=test, loss_fn=loss_fn,
                           checkpoint_path=out / "checkpoint.pt", progress=False)
    rank = dist.get_rank() if dist.is_initialized() else 0
    torch.save(model.state_dict(), out / f"weights-rank{rank}.pt")
    if distributed.is_main_process():
        history.save_json(out / "run.json")
    return history


if __name__ == "__main__":
    task, out = sys.argv[1], Path(sys.argv[2])
    distributed.start_process_group()  # gloo: no GPU here
    train(out, PER_PROCESS_BATCH, fail_on_rank=1 if task == "fail" else None)
    distributed.stop_process_group()  # only after success; on the failure torchrun stops the other rank
