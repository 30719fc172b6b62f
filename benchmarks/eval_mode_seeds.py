"""Notebook 06's eval() lesson over several test samples: eval mode against the article's train-mode test.

    python benchmarks/eval_mode_seeds.py --seeds 5

The network is the one notebook 06 tests: ResNet-20 trained on all 50,000 training images for 3
epochs (`data/results/degradation-cpu/degradation__resnet-20.pt`, notebook 01's CPU reference). Each
seed draws another class-balanced sample of 1,000 test images, in another order, and reshuffles it
with that seed (`article.compare_test_modes`, the call the notebook makes). Prints one Markdown
table row per seed and batch size, for benchmarks/README.md ("Lessons over seeds").
"""

import argparse

from course_utils import article, checkpoint, data, models
from course_utils.devices import describe_device, pick_device

CHECKPOINT = data.REPO_DATA_DIR / "results" / "degradation-cpu" / "degradation__resnet-20.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--test-size", type=int, default=1000)
    args = parser.parse_args()

    device = pick_device(verbose=False)
    model = models.build("resnet-20")
    checkpoint.load_checkpoint(CHECKPOINT, model, restore_rng=False)
    cifar = data.load_cifar10()
    print(f"device: {describe_device(device)}; {CHECKPOINT.name}; {args.test_size:,} test images per seed")
    print("| seed | batch | eval mode | train mode (no eval()) | predictions changed by reshuffling |")
    print("|---|---|---|---|---|")
    for seed in range(args.seeds):
        test = cifar.subset(None, args.test_size, seed=seed)
        for row in article.compare_test_modes(model, test.test_images, test.test_labels, seed=seed, device=device):
            print(f"| {seed} | {row['batch_size']} | {row['eval_accuracy']:.1%} | {row['train_mode_accuracy']:.1%} "
                  f"| {row['changed_by_order']:.1%} |", flush=True)


if __name__ == "__main__":
    main()
