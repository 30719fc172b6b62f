"""CIFAR-10: loading, class-balanced subsets, the two augmentation pipelines, image folders.

* ``load_cifar10()``       the whole data set as uint8 tensors (from disk, or downloaded once).
* ``subset()``             a class-balanced, seeded sample for the quick and smoke modes.
* ``Loader``, ``EpochLoader`` what ``fit`` and ``evaluate`` need of a loader (a torch DataLoader is one).
* ``TensorLoader``         the course's default loader: the data set stays on the training device,
                           every batch is cropped and flipped there in a few tensor operations.
* ``image_folder_dataset`` a folder tree ``<class name>/<image>`` for testing on your own images.
"""

from __future__ import annotations

import os
import pickle
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol, Sequence, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from course_utils.distributed import is_distributed

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
# Per-channel mean and standard deviation of the official training set, in [0, 1] units.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
NPZ_NAME = "cifar10.npz"
BATCHES_DIR = "cifar-10-batches-py"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")

def default_data_dir(package_parent: Path) -> Path:
    """The course's ``data/`` folder in a checkout of the repository (``pip install -e .``, or the
    package on ``sys.path``); for a copy installed into site-packages, ``~/.cache/resnet-course``
    instead, so that data and run outputs never land inside the installed package (point
    ``COURSE_DATA_DIR`` elsewhere to choose)."""
    if (package_parent / "pyproject.toml").is_file():
        return package_parent / "data"
    return Path.home() / ".cache" / "resnet-course"


REPO_DATA_DIR = default_data_dir(Path(__file__).resolve().parent.parent)


class DatasetNotFoundError(FileNotFoundError):
    """CIFAR-10 is not on disk and could not be downloaded."""


class DatasetFormatError(ValueError):
    """A data file exists but cannot be read as CIFAR-10 (truncated, wrong arrays, ...)."""


@dataclass
class Cifar10:
    """CIFAR-10 as tensors. Images: uint8, (N, 3, 32, 32), RGB. Labels: int64, (N,), 0-9."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: tuple[str, ...] = CIFAR10_CLASSES

    def subset(self, train_size: int | None, test_size: int | None = None, seed: int = 0) -> "Cifar10":
        """A class-balanced sample of each split (``None`` keeps a split whole)."""
        train = (self.train_images, self.train_labels)
        test = (self.test_images, self.test_labels)
        if train_size is not None:
            train = subset(*train, train_size, seed=seed)
        if test_size is not None:
            test = subset(*test, test_size, seed=seed)
        return Cifar10(*train, *test, classes=self.classes)

    def __repr__(self) -> str:
        return (f"Cifar10(train={tuple(self.train_images.shape)}, test={tuple(self.test_images.shape)}, "
                f"classes={len(self.classes)})")


def data_dir(root: str | os.PathLike | None = None) -> Path:
    """Where data lives: ``root`` if given, else ``$COURSE_DATA_DIR``, else the repository's ``data/``."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get("COURSE_DATA_DIR"):
        folder = Path(os.environ["COURSE_DATA_DIR"]).expanduser()  # "~/data" as a shell would read it
        if not folder.is_absolute():  # a shell at the repository and a notebook in notebooks/ would read two folders
            raise ValueError(f"COURSE_DATA_DIR={os.environ['COURSE_DATA_DIR']!r} is a relative path, which each "
                             f"program reads from its own current folder (here {Path.cwd()}; a notebook's is "
                             f"notebooks/): set it to an absolute path, e.g. COURSE_DATA_DIR={folder.absolute()}")
        return folder
    return REPO_DATA_DIR


def load_cifar10(root: str | os.PathLike | None = None, download: bool = True) -> Cifar10:
    """Load all 60,000 CIFAR-10 images.

    Looks in ``data_dir(root)`` for, in order: ``cifar10.npz`` (arrays x_train, y_train, x_test,
    y_test as in the course's offline copy), torchvision's ``cifar-10-batches-py/`` folder, and
    finally downloads that folder with ``torchvision.datasets.CIFAR10`` (170 MB, checksum-verified).
    """
    root = data_dir(root)
    npz_path = root / NPZ_NAME
    if npz_path.is_symlink() and not npz_path.exists():
        raise DatasetNotFoundError(
            f"{npz_path} is a broken link: it points to {os.readlink(npz_path)}, which does not exist. Point it "
            f"at the real file (ln -sf /path/to/cifar10.npz {npz_path}) or delete it to download the data set.")
    if npz_path.exists():
        return _load_npz(npz_path)
    if (root / BATCHES_DIR).is_dir():
        return _load_torchvision(root, download=False)
    if download:
        return _load_torchvision(root, download=True)
    raise DatasetNotFoundError(_missing_message(root, "download=False was given"))


NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def _read_npz_arrays(path: Path) -> dict[str, np.ndarray]:
    """The four arrays of a CIFAR-10 npz. Decompressing them takes over a second, and every process
    loads them again (each notebook, each run of ``run --jobs``, each test), so the first read keeps an
    uncompressed copy beside the file, ``cifar10.npz.decoded/`` (under data/, which git ignores), that
    later reads take in a fraction of the time. The copy names the file's size and modification time:
    a changed file is decoded again. Where the folder is not writable, nothing is kept."""
    source = path.stat()
    stamp = f"{source.st_size} bytes, modified {source.st_mtime_ns} ns"
    cache = path.with_name(path.name + ".decoded")
    try:
        if (cache / "source.txt").read_text() == stamp:
            return {name: np.load(cache / f"{name}.npy") for name in NPZ_ARRAYS}
    except (OSError, ValueError):
        pass  # no copy yet, a stale one, or one being replaced: decode the file
    with np.load(path) as arrays:
        found = {name: arrays[name] for name in NPZ_ARRAYS}
    _keep_decoded(cache, found, stamp)
    return found


def _keep_decoded(cache: Path, arrays: dict[str, np.ndarray], stamp: str) -> None:
    """Write the uncompressed copy into a folder of its own, then rename it into place: a reader sees a
    whole copy or none, and two processes decoding at once cannot mix their files."""
    import shutil
    import tempfile

    try:
        temporary = Path(tempfile.mkdtemp(dir=cache.parent, prefix=f".{cache.name}."))
    except OSError:
        return  # a read-only data folder (a shared copy): read the npz each time
    try:
        os.chmod(temporary, 0o755)  # mkdtemp makes it private; the data set is for every user to read
        for name, array in arrays.items():
            np.save(temporary / f"{name}.npy", array)
        (temporary / "source.txt").write_text(stamp)
        if cache.exists():
            shutil.rmtree(cache, ignore_errors=True)  # stale: made from an earlier file
        os.rename(temporary, cache)
    except OSError:  # a full disk, or another process renamed its copy first
        shutil.rmtree(temporary, ignore_errors=True)


def _load_npz(path: Path) -> Cifar10:
    try:
        arrays = _read_npz_arrays(path)
        x_train, y_train, x_test, y_test = (arrays[name] for name in NPZ_ARRAYS)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, pickle.UnpicklingError) as error:
        raise DatasetFormatError(
            f"{path} is not a readable CIFAR-10 npz ({type(error).__name__}: {error}). It may be truncated: "
            f"move it aside and copy it again, or delete it to download the data set instead."
        ) from None
    for name, images, labels in (("train", x_train, y_train), ("test", x_test, y_test)):
        if images.ndim != 4 or images.shape[1:] != (32, 32, 3) or images.dtype != np.uint8:
            raise DatasetFormatError(
                f"{path}: x_{name} should be uint8 images of shape (N, 32, 32, 3), "
                f"got {images.dtype} {images.shape}")
        if labels.shape != (len(images),):
            raise DatasetFormatError(f"{path}: y_{name} has shape {labels.shape}, expected ({len(images)},)")
        if not np.issubdtype(labels.dtype, np.integer):
            raise DatasetFormatError(f"{path}: y_{name} holds {labels.dtype} values; CIFAR-10 labels are the "
                                     f"integers 0-9 (a class index per image)")
        outside = labels[(labels < 0) | (labels > 9)]
        if len(outside):
            raise DatasetFormatError(f"{path}: y_{name} has {len(outside):,} label(s) outside 0-9 "
                                     f"(e.g. {outside[0]}); CIFAR-10 has 10 classes, numbered 0-9")
    return Cifar10(
        train_images=_hwc_to_chw(x_train),
        train_labels=torch.from_numpy(y_train.astype(np.int64)),
        test_images=_hwc_to_chw(x_test),
        test_labels=torch.from_numpy(y_test.astype(np.int64)),
    )


def _load_torchvision(root: Path, download: bool) -> Cifar10:
    import torchvision

    try:
        train = torchvision.datasets.CIFAR10(str(root), train=True, download=download)
        test = torchvision.datasets.CIFAR10(str(root), train=False, download=download)
    except (OSError, RuntimeError) as error:  # URLError is an OSError; a bad checksum a RuntimeError
        reason = f"{type(error).__name__}: {error}"
        if not download:
            raise DatasetFormatError(
                f"{root / BATCHES_DIR} exists but torchvision could not read it ({reason}). Move that folder "
                f"aside and run again to download a fresh copy, or place {NPZ_NAME} in {root}."
            ) from None
        raise DatasetNotFoundError(_missing_message(root, reason)) from None
    return Cifar10(
        train_images=_hwc_to_chw(train.data),
        train_labels=torch.tensor(train.targets, dtype=torch.int64),
        test_images=_hwc_to_chw(test.data),
        test_labels=torch.tensor(test.targets, dtype=torch.int64),
    )


def _missing_message(root: Path, reason: str) -> str:
    return (
        f"CIFAR-10 was not found in {root} and could not be downloaded ({reason}).\n"
        f"Do one of these, then run again:\n"
        f"  * with a network: call load_cifar10(download=True) (torchvision fetches {CIFAR10_URL});\n"
        f"  * offline: download that file elsewhere and unpack it so that {root / BATCHES_DIR}/data_batch_1 exists;\n"
        f"  * or copy the course's {NPZ_NAME} to {root / NPZ_NAME};\n"
        f"  * or point COURSE_DATA_DIR (or the root argument) at a folder holding either."
    )


def _hwc_to_chw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()


def subset(images: torch.Tensor, labels: torch.Tensor, size: int, *, seed: int = 0,
           num_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """A class-balanced random sample of ``size`` images, in shuffled order.

    Each class gets ``size // num_classes`` images; the remainder goes one each to the first
    classes. The same ``seed`` always gives the same sample.
    """
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for cls in range(num_classes):
        wanted = size // num_classes + (1 if cls < size % num_classes else 0)
        members = torch.nonzero(labels == cls).flatten()
        if wanted > len(members):
            raise ValueError(f"size={size} needs {wanted} images of class {cls}, but there are only "
                             f"{len(members)}; ask for at most {num_classes * len(members)}")
        chosen.append(members[torch.randperm(len(members), generator=generator)[:wanted]])
    index = torch.cat(chosen)
    # Shuffle across classes: the test split is stored class by class.
    index = index[torch.randperm(len(index), generator=generator)]
    return images[index], labels[index]


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float32 standardised with CIFAR-10's mean/std (in [0, 1] units)."""
    mean = torch.tensor(CIFAR10_MEAN, device=images.device).view(1, 3, 1, 1) * 255
    inverse_std = 1 / (torch.tensor(CIFAR10_STD, device=images.device).view(1, 3, 1, 1) * 255)
    # In place on the fresh float copy: one pass less over memory than (x / 255 - mean) / std.
    return images.float().sub_(mean).mul_(inverse_std)


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Undo ``normalize``: back to floats in [0, 1], for showing images."""
    mean = torch.tensor(CIFAR10_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD, device=images.device).view(1, 3, 1, 1)
    return (images * std + mean).clamp(0, 1)


def random_crop_flip(images: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """The standard CIFAR augmentation on a whole batch at once.

    Same distribution as torchvision's ``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip()``:
    zero-pad 4 pixels on each side, cut a 32x32 window at a uniformly random offset (0..8 in
    each direction), and mirror half of the images. ``generator`` is a CPU generator.
    """
    n, channels, height, width = images.shape
    padded_width = width + 2 * padding
    padded = F.pad(images, (padding, padding, padding, padding)).view(n, channels, -1)
    offset_y = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(images.device)
    offset_x = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(images.device)
    flip = (torch.rand(n, generator=generator) < 0.5).to(images.device)

    rows = offset_y[:, None] + torch.arange(height, device=images.device)  # (n, height)
    cols = offset_x[:, None] + torch.arange(width, device=images.device)  # (n, width)
    cols = torch.where(flip[:, None], cols.flip(1), cols)  # a flipped image reads right to left
    # One gather over flattened pixels does crop and flip together (several times faster on a
    # CPU than indexing with four broadcast index tensors).
    pixel = (rows[:, :, None] * padded_width + cols[:, None, :]).view(n, 1, height * width)
    return padded.gather(2, pixel.expand(n, channels, height * width)).view(n, channels, height, width)


def cutout_mask(n: int, height: int, width: int, size: int, generator: torch.Generator,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """Where Cutout (DeVries & Taylor 2017) blanks each of ``n`` images: a bool (n, 1, H, W) mask.

    Each image gets one ``size`` x ``size`` square centred on a uniformly random pixel; near an
    edge the square is clipped, as in the paper, so less than ``size**2`` pixels may be covered.
    Apply it to normalised images with ``masked_fill_(mask, 0)``: 0 is the data set's mean colour.
    """
    top = torch.randint(0, height, (n,), generator=generator).to(device) - size // 2
    left = torch.randint(0, width, (n,), generator=generator).to(device) - size // 2
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    inside_rows = (rows >= top[:, None]) & (rows < top[:, None] + size)  # (n, height)
    inside_cols = (cols >= left[:, None]) & (cols < left[:, None] + size)  # (n, width)
    return (inside_rows[:, :, None] & inside_cols[:, None, :]).unsqueeze(1)


@runtime_checkable
class Loader(Protocol):
    """What ``fit`` and ``evaluate`` need of a data loader: batches of ``(images, labels)``, and how
    many batches there are (for the progress bar). A torch ``DataLoader`` is one; so is
    ``TensorLoader``. ``fit`` records ``batch_size`` and the number of images of these two."""

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

    def __len__(self) -> int: ...


@runtime_checkable
class EpochLoader(Loader, Protocol):
    """A loader whose shuffling and augmentation depend only on the epoch number. ``fit`` calls
    ``set_epoch(epoch)`` before each epoch, so a run can be repeated, or resumed from a
    checkpoint, with the same batches. ``TensorLoader`` and ``article.ArticleLoader`` are ones."""

    def set_epoch(self, epoch: int) -> None: ...


class TensorLoader:
    """Batches of ``(images, labels)`` made from tensors already in memory (the course's default).

    The uint8 data set is moved to ``device`` once; every batch is then indexed, augmented
    (random crop with 4-pixel padding + horizontal flip) and normalised there as whole-batch tensor
    operations: no per-image Python, no worker processes. Images come out float32, normalised,
    shape (batch, 3, 32, 32); labels int64. ``cutout=16`` also blanks a random 16x16 square of
    every training image (``cutout_mask``); it needs ``augment=True``.

    Randomness depends only on ``seed`` and the epoch number, so a run can be repeated or
    resumed exactly: ``fit`` calls ``set_epoch(epoch)`` before each epoch (otherwise each new
    iteration counts as the next epoch).

    Several processes (``torchrun``, DistributedDataParallel): ``batch_size`` is per process.
    Every process shuffles with the same seed and takes its own slice of each global batch of
    ``batch_size * world_size`` images, so the processes see disjoint parts of every epoch whose
    union is the whole epoch, exactly the batches one process with ``batch_size * world_size``
    would see. ``rank`` and ``world_size`` default to those of the initialised process group.
    Without ``drop_last``, a last global batch smaller than the number of processes is topped up
    with the epoch's first images, so that every process gets the same number of batches.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int, augment: bool = True,
                 shuffle: bool = True, device: torch.device | str | None = None, seed: int = 0,
                 drop_last: bool = False, rank: int | None = None, world_size: int | None = None,
                 cutout: int = 0) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be a uint8 tensor (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(cutout, int) or not 0 <= cutout <= min(images.shape[-2:]):
            raise ValueError(f"cutout must be a square size in pixels from 0 (off) to {min(images.shape[-2:])}, "
                             f"got {cutout!r}; the Cutout paper uses 16 for CIFAR-10")
        if cutout and not augment:
            raise ValueError("cutout is an augmentation: use it with augment=True (not for test images)")
        self.cutout = cutout
        self.device = torch.device(device) if device is not None else images.device
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.batch_size = batch_size
        self.augment = augment
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0
        distributed = is_distributed()
        self.world_size = world_size if world_size is not None else (
            torch.distributed.get_world_size() if distributed else 1)
        self.rank = rank if rank is not None else (torch.distributed.get_rank() if distributed else 0)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must be in 0..{self.world_size - 1}, got {self.rank}")

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration use the shuffling and augmentation of ``epoch``."""
        self.epoch = epoch

    def __len__(self) -> int:
        global_batch = self.batch_size * self.world_size
        if self.drop_last:
            return len(self.images) // global_batch
        return -(-len(self.images) // global_batch)  # ceiling division

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1
        if self.shuffle:
            order = torch.randperm(len(self.images), generator=generator).to(self.device)
        else:
            order = torch.arange(len(self.images), device=self.device)
        global_batch = self.batch_size * self.world_size
        for start in range(0, len(self) * global_batch, global_batch):
            index = order[start:start + global_batch]
            if len(index) < self.world_size:
                index = torch.cat([index, order[:self.world_size - len(index)]])
            images = self.images[index]
            if self.augment:
                # Drawn for the whole global batch, so every process draws the same random numbers.
                images = random_crop_flip(images, generator)
            mine = slice(*_shard_bounds(len(index), self.rank, self.world_size))
            batch = normalize(images[mine])
            if self.cutout:
                height, width = images.shape[-2:]
                mask = cutout_mask(len(index), height, width, self.cutout, generator, self.device)
                batch.masked_fill_(mask[mine], 0.0)
            yield batch, self.labels[index[mine]]


def _shard_bounds(size: int, rank: int, world_size: int) -> tuple[int, int]:
    """Start and end of process ``rank``'s part of ``size`` items (parts differ by at most one)."""
    base, extra = divmod(size, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def measure_loader_speed(loader: Loader, seconds: float = 5.0) -> float:
    """Images per second that ``loader`` delivers, iterating (and restarting) it for about
    ``seconds``. The first batch is not timed: it includes starting workers."""
    iterator = iter(loader)
    next(iterator)
    images, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        try:
            batch, _ = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            continue
        images += len(batch)
    return images / (time.perf_counter() - start)


@dataclass
class ImageFolderData:
    """Images read from a folder tree: uint8 (N, 3, size, size), int64 labels, and their paths.

    A map-style dataset like torchvision's: ``len(data)`` images, ``data[i]`` is ``(image, label)``.
    """

    images: torch.Tensor
    labels: torch.Tensor
    paths: list[Path]
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])


# Transparent pixels are composited on this colour (white: how most viewers show a transparent image).
TRANSPARENT_BACKGROUND = (255, 255, 255)


def image_folder_dataset(path: str | os.PathLike, image_size: int = 32,
                         classes: Sequence[str] = CIFAR10_CLASSES) -> ImageFolderData:
    """Read ``path/<class name>/<image file>`` for evaluation.

    Folder names are matched to ``classes`` by name (so ``cat/`` is label 3 whatever other
    folders exist). Every image becomes an 8-bit RGB picture as a viewer would show it: a photo's
    EXIF orientation is applied; grey and palette images become RGB; transparent images are laid
    on ``TRANSPARENT_BACKGROUND`` (white); 16-bit images are scaled to 8 bits (not clipped) and
    floating-point ones are read as 0-1 (or scaled by their maximum when it is above 1). Then each
    is resized to ``image_size`` x ``image_size``. Files it does not use (unknown extensions such
    as .heic, files without one, sub-folders inside a class folder, files beside the class folders)
    are named in a warning; hidden files, macOS ``._*`` files and ``__MACOSX/`` are skipped
    silently. Feed the result to ``TensorLoader(..., augment=False, shuffle=False)``.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder; expected {root}/<class name>/<image files>")
    entries = [p for p in root.iterdir() if not _hidden(p)]
    folders = sorted(p for p in entries if p.is_dir())
    if not folders:
        raise ValueError(f"{root} has no class folders; expected {root}/<class name>/<image files> "
                         f"with class names from: {', '.join(classes)}")
    unknown = [f.name for f in folders if f.name not in classes]
    if unknown:
        raise ValueError(f"{root}: folder(s) {', '.join(unknown)} are not class names; "
                         f"valid names: {', '.join(classes)}")

    unused = [p for p in entries if not p.is_dir()]
    images, labels, paths = [], [], []
    for folder in folders:
        try:
            files = sorted(p for p in folder.iterdir() if not _hidden(p))
        except PermissionError:
            raise PermissionError(f"cannot read the class folder {folder}: it is not readable for this user; "
                                  f"give read access (chmod -R u+rX {root}) or copy the images elsewhere") from None
        for file in files:
            # Only regular files: a FIFO or device named like an image would block the read forever.
            if not file.is_file() or file.suffix.lower() not in IMAGE_SUFFIXES:
                unused.append(file)
                continue
            try:
                pixels = _read_rgb(file, image_size)
            except PermissionError:
                raise PermissionError(f"cannot read {file}: it is not readable for this user; give read access "
                                      f"(chmod -R u+rX {root}) or leave it out of the folder") from None
            images.append(torch.from_numpy(pixels).permute(2, 0, 1))
            labels.append(classes.index(folder.name))
            paths.append(file)
    if unused:
        shown = ", ".join(str(p.relative_to(root)) for p in unused[:10])
        warnings.warn(f"{root}: {len(unused)} file(s) or folder(s) not read (not an image file directly in a "
                      f"class folder; readable: {', '.join(IMAGE_SUFFIXES)}): {shown}"
                      + (" ..." if len(unused) > 10 else ""), stacklevel=2)
    if not images:
        raise ValueError(f"{root} has class folders but no images ({', '.join(IMAGE_SUFFIXES)}) in them")
    return ImageFolderData(torch.stack(images), torch.tensor(labels, dtype=torch.int64), paths, tuple(classes))


def _hidden(path: Path) -> bool:
    # ".DS_Store", macOS "._photo.jpg" (AppleDouble) and "__MACOSX/" come with archives, not from the learner.
    return path.name.startswith(".") or path.name == "__MACOSX"


def _read_rgb(file: Path, image_size: int) -> np.ndarray:
    """One image file as uint8 (image_size, image_size, 3), the way a viewer shows it."""
    from PIL import Image, ImageOps

    try:
        with Image.open(file) as image:
            image = ImageOps.exif_transpose(image)  # phones store "rotate 90°" as a tag, not in the pixels
            image = _to_8_bit_rgb(image)
            if image.size != (image_size, image_size):
                image = image.resize((image_size, image_size), Image.BILINEAR)
            return np.array(image, dtype=np.uint8)
    except Image.DecompressionBombError as error:
        raise ValueError(f"{file} is too large to read safely ({error}); shrink it first") from None
    except OSError as error:
        raise ValueError(f"{file} could not be read as an image ({error}); remove or replace it") from None


def _to_8_bit_rgb(image):
    from PIL import Image

    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if image.mode == "F":
            top = 1.0 if values.max(initial=0) <= 1.0 else values.max()
        elif image.mode == "I" and values.max(initial=0) > 65535:
            top = values.max()
        else:
            top = 65535.0  # 16-bit data, whatever PIL calls the mode
        grey = np.clip(np.round(values / top * 255), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, TRANSPARENT_BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # grey ("L"), palette ("P"), CMYK, RGB


def export_image_folder(images: torch.Tensor, labels: torch.Tensor, path: str | os.PathLike,
                        classes: Sequence[str] = CIFAR10_CLASSES) -> list[Path]:
    """Write uint8 (N, 3, H, W) images as PNGs into ``path/<class name>/NNNNN.png``.

    Refuses to overwrite: if any target file exists, nothing is written.
    """
    from PIL import Image

    root = Path(path)
    targets = [root / classes[int(label)] / f"{index:05d}.png" for index, label in enumerate(labels)]
    existing = [t for t in targets if t.exists()]
    if existing:
        raise FileExistsError(f"{len(existing)} file(s) already exist, e.g. {existing[0]}; "
                              f"choose an empty folder or remove {root} first")
    for image, target in zip(images, targets):
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.permute(1, 2, 0).cpu().numpy()).save(target)
    return targets
