"""Images per second of the article's input pipeline vs the course's batched TensorLoader.

    python benchmarks/loader_speed.py [--seconds 20]

Both produce training-ready batches from the same CIFAR-10 training images; no model runs, so
this measures the input pipeline alone. The article's pipeline: per-image PIL transforms
(Resize 256, flip, RandomCrop 64, ColorJitter, Normalize) in a DataLoader, batch 8, 2 workers.
The TensorLoader: pad-4 crop + flip + normalise as whole-batch tensor operations, batch 128.
"""

import argparse

import torch

from course_utils.article import article_loader
from course_utils.data import TensorLoader, load_cifar10, measure_loader_speed
from course_utils.devices import describe_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring time per loader")
    args = parser.parse_args()

    data = load_cifar10()
    print(f"device: {describe_device('cpu')}, torch {torch.__version__}")
    article_pipeline = article_loader(data.train_images, data.train_labels, batch_size=8, num_workers=2)
    article = measure_loader_speed(article_pipeline, args.seconds)
    print(f"article pipeline (PIL, batch 8, 2 workers): {article:,.0f} images/s")
    tensor = measure_loader_speed(TensorLoader(data.train_images, data.train_labels, batch_size=128), args.seconds)
    print(f"TensorLoader (batched crop + flip, batch 128): {tensor:,.0f} images/s")
    print(f"speed-up: {tensor / article:.0f}x")


if __name__ == "__main__":
    main()
