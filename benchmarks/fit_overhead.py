"""Overhead of ``course_utils.training.fit`` over a minimal hand-written training loop.

    python benchmarks/fit_overhead.py [--repeats 5] [--steps 40]

Both loops train the same model (ResNet-20, batch 128) on the same pre-made batches of real
CIFAR-10, so the difference is what ``fit`` adds: progress bar, per-step records, accuracy
counting, timing. The two are run alternately, ``--repeats`` times, and the medians compared.
"""

import argparse
import statistics
import time

import torch
from torch import nn

from course_utils.data import TensorLoader, load_cifar10
from course_utils.models import cifar_resnet
from course_utils.devices import describe_device
from course_utils.training import fit, seed_everything


def hand_written_loop(model, batches, optimizer) -> None:
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for images, labels in batches:
        loss = loss_fn(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40, help="training steps per timed run")
    args = parser.parse_args()

    data = load_cifar10()
    loader = TensorLoader(data.train_images[: 128 * args.steps], data.train_labels[: 128 * args.steps],
                          batch_size=128, seed=0)
    batches = list(loader)  # the same tensors for both loops: the loader's cost is not measured

    def fresh():
        seed_everything(0)
        model = cifar_resnet(20)
        return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)

    hand, ours = [], []
    model, optimizer = fresh()
    hand_written_loop(model, batches[:3], optimizer)  # warm-up
    for _ in range(args.repeats):
        model, optimizer = fresh()
        hand.append(timed(lambda: hand_written_loop(model, batches, optimizer)))
        model, optimizer = fresh()
        ours.append(timed(lambda: fit(model, batches, epochs=1, optimizer=optimizer, progress=True)))

    print(f"device: {describe_device('cpu')}, torch {torch.__version__}, {len(batches)} steps of 128, "
          f"{args.repeats} repeats")
    print(f"hand-written loop: median {statistics.median(hand):.2f} s  (runs: {', '.join(f'{t:.2f}' for t in hand)})")
    print(f"fit():             median {statistics.median(ours):.2f} s  (runs: {', '.join(f'{t:.2f}' for t in ours)})")
    print(f"overhead of fit: {statistics.median(ours) / statistics.median(hand) - 1:+.1%}")


if __name__ == "__main__":
    main()
