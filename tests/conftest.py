"""Fixtures shared by the unit tests: the real CIFAR-10 data set, loaded once."""

import pytest

from course_utils.data import load_cifar10


@pytest.fixture(scope="session")
def cifar():
    """All of CIFAR-10 (from data/cifar10.npz, which .ci/run links from the offline copy)."""
    return load_cifar10(download=False)


@pytest.fixture(scope="session")
def tiny(cifar):
    """A class-balanced 256-image training and 100-image test subset, for fast training tests."""
    return cifar.subset(256, 100, seed=0)
