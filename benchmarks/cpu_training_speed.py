"""Training images/s of candidate networks for the laptop recipe, by memory layout and batch size.

    python benchmarks/cpu_training_speed.py [--steps 5] [--compile]

Each line trains a fresh network for a few SGD steps on one batch of real CIFAR-10 images
(`training.measure_training_speed`: one untimed warm-up step, then `--steps` timed ones).
`--compile` also times `torch.compile` for ResNet18 at width 16: the first step (which compiles)
and the compiled speed. Run it with nothing else on the machine; on a shared VM repeat it, since the
neighbours' load moves these numbers by tens of percent.
"""

import argparse
import time

import torch

from course_utils import models
from course_utils.data import load_cifar10, normalize
from course_utils.devices import describe_device
from course_utils.training import measure_training_speed, seed_everything

CANDIDATES = {
    "ResNet-20 (cifar_resnet(20))": lambda: models.cifar_resnet(20),
    "ResNet-14 (cifar_resnet(14))": lambda: models.cifar_resnet(14),
    "ResNet18, width 16": lambda: models.resnet18(width=16),
    "ResNet18, width 24": lambda: models.resnet18(width=24),
    "ResNet18, width 32": lambda: models.resnet18(width=32),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (about a minute)")
    args = parser.parse_args()

    cifar = load_cifar10()
    print(f"device: {describe_device('cpu')}, torch {torch.__version__}")
    print(f"{'network':<30}{'parameters':>11}{'batch':>7}{'NCHW':>8}{'NHWC':>8}  images/s")
    for name, build in CANDIDATES.items():
        for batch_size in (128, 512):
            images, labels = normalize(cifar.train_images[:batch_size]), cifar.train_labels[:batch_size]
            speeds = []
            for layout in (torch.contiguous_format, torch.channels_last):
                seed_everything(0)
                model = build().to(memory_format=layout)
                speeds.append(measure_training_speed(model, images.contiguous(memory_format=layout), labels,
                                                     steps=args.steps))
            print(f"{name:<30}{models.count_parameters(model):>11,}{batch_size:>7}{speeds[0]:>8.0f}{speeds[1]:>8.0f}",
                  flush=True)

    if args.compile:
        seed_everything(0)
        model = models.resnet18(width=16).to(memory_format=torch.channels_last)
        images = normalize(cifar.train_images[:128]).contiguous(memory_format=torch.channels_last)
        labels = cifar.train_labels[:128]
        compiled = torch.compile(model)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        start = time.perf_counter()
        torch.nn.functional.cross_entropy(compiled(images), labels).backward()
        optimizer.step()
        print(f"torch.compile, ResNet18 width 16, batch 128, NHWC: first step (compiling) "
              f"{time.perf_counter() - start:.0f} s")
        print(f"  compiled: {measure_training_speed(compiled, images, labels, steps=args.steps):.0f} images/s, "
              f"not compiled: {measure_training_speed(model, images, labels, steps=args.steps):.0f} images/s")


if __name__ == "__main__":
    main()
