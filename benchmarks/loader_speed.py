"""Images per second of the article's input pipeline vs the course's batched TensorLoader.

    python benchmarks/loader_speed.py [--seconds 20]

Both produce training-ready batches from the same CIFAR-10 training images; no model runs, so
this measures the input pipeline alone. The article's pipeline: per-image PIL transforms
(Resize 256, flip, RandomCrop 64, ColorJitter, Normalize) in a DataLoader, batch 8, 2 workers.
The TensorLoader: pad-4 crop + flip + normalise as whole-batch tensor operations, batch 128.
"""

import argparse
import time

import torch

from course_utils.data import TensorLoader, article_loader, load_cifar10
from course_utils.training import describe_device


def images_per_second(loader, seconds: float) -> float:
    """Run through ``loader`` (restarting it as needed) for about ``seconds``; warm-up excluded."""
    iterator = iter(loader)
    next(iterator)  # warm-up: starts workers, first allocations
    images, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        try:
            batch, _ = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            continue
        images += len(batch)
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring time per loader")
    args = parser.parse_args()

    data = load_cifar10()
    print(f"device: {describe_device('cpu')}, torch {torch.__version__}")
    article = images_per_second(article_loader(data.train_images, data.train_labels, batch_size=8, num_workers=2),
                                args.seconds)
    print(f"article pipeline (PIL, batch 8, 2 workers): {article:,.0f} images/s")
    tensor = images_per_second(TensorLoader(data.train_images, data.train_labels, batch_size=128), args.seconds)
    print(f"TensorLoader (batched crop + flip, batch 128): {tensor:,.0f} images/s")
    print(f"speed-up: {tensor / article:.0f}x")


if __name__ == "__main__":
    main()
