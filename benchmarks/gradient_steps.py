"""Do a few SGD steps blow up a default-initialised ResNet-56? (notebook 01, section 3)

    python benchmarks/gradient_steps.py --lr 0.1 --seeds 5
    python benchmarks/gradient_steps.py --lr 0.02 --seeds 5

For each seed: the class-balanced subset of notebook 01's `gradients` row (640 images in quick mode),
plain-56 and ResNet-56 built from the default initialisation, one epoch of SGD (momentum 0.9, weight
decay 1e-4) at the given learning rate, then the loss of every step and the ratio of the first
convolution's gradient norm to the last one's. This chose the `gradients` learning rate.
"""

import argparse

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--mode", default="quick")
    args = parser.parse_args()
    from course_utils import analysis, data, models, training
    from course_utils.experiments import get_settings

    settings = get_settings("gradients", args.mode)
    cifar = data.load_cifar10()
    for seed in range(args.seeds):
        images, labels = data.subset(cifar.train_images, cifar.train_labels, settings.train_size, seed=seed)
        batch, batch_labels = next(iter(data.TensorLoader(images, labels, batch_size=128, augment=False,
                                                          shuffle=False)))
        results = []
        for name in settings.models:
            training.seed_everything(seed)
            model = models.build(name)
            optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=settings.momentum,
                                        weight_decay=settings.weight_decay)
            loader = data.TensorLoader(images, labels, batch_size=settings.batch_size, seed=seed)
            history = training.fit(model, loader, epochs=1, optimizer=optimizer, progress=False)
            norms = list(analysis.gradient_norms(model, batch, batch_labels).values())
            losses = " ".join(f"{loss:.2f}" for loss in history.step_loss)
            results.append(f"{name}: step losses {losses}, first/last gradient {norms[0] / norms[-1]:.3g}")
        print(f"lr {args.lr} seed {seed}: " + " | ".join(results), flush=True)


if __name__ == "__main__":
    main()
