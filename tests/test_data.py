"""course_utils.data on the real CIFAR-10 file."""

import hashlib
import shutil
import urllib.request

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torchvision import transforms

from course_utils import data
from course_utils.data import (CIFAR10_CLASSES, DatasetFormatError, DatasetNotFoundError, TensorLoader,
                               image_folder_dataset, load_cifar10, subset)


def test_load_cifar10_gives_uint8_chw_tensors_in_official_order(cifar):
    assert cifar.train_images.shape == (50_000, 3, 32, 32)
    assert cifar.test_images.shape == (10_000, 3, 32, 32)
    assert cifar.train_images.dtype == torch.uint8 and cifar.train_labels.dtype == torch.int64
    assert cifar.classes == CIFAR10_CLASSES
    assert cifar.train_labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]  # official order
    assert torch.bincount(cifar.test_labels).tolist() == [1000] * 10
    # Mean pixel of the training set, per channel (README of the offline copy: 125.27, 122.93, 113.86).
    mean = cifar.train_images.float().mean(dim=(0, 2, 3))
    torch.testing.assert_close(mean, torch.tensor([125.27, 122.93, 113.86]), atol=0.01, rtol=0)


def test_root_argument_and_environment_variable_choose_the_folder(tmp_path, monkeypatch, cifar):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    assert data.data_dir() == tmp_path
    assert data.data_dir("elsewhere").name == "elsewhere"
    with pytest.raises(DatasetNotFoundError):
        load_cifar10(download=False)  # tmp_path is empty


def test_torchvision_batches_folder_is_read(tmp_path, monkeypatch, cifar):
    # Write a small folder in torchvision's format (pickled dicts) and read it back.
    import pickle

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    images = cifar.test_images[:20].permute(0, 2, 3, 1).reshape(20, -1).numpy()
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]:
        with open(folder / name, "wb") as file:
            pickle.dump({"data": images.reshape(20, 32, 32, 3).transpose(0, 3, 1, 2).reshape(20, -1),
                         "labels": cifar.test_labels[:20].tolist()}, file)
    with open(folder / "batches.meta", "wb") as file:
        pickle.dump({"label_names": list(CIFAR10_CLASSES)}, file)
    # torchvision verifies md5 sums of the official files: ours are not official, so it must refuse.
    with pytest.raises(DatasetFormatError, match="exists but torchvision could not read it"):
        load_cifar10(tmp_path, download=False)
    # With the checksum check passed, the folder's pixels and labels come through unchanged.
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    loaded = load_cifar10(tmp_path, download=False)
    assert loaded.train_images.shape == (100, 3, 32, 32)
    assert torch.equal(loaded.test_images, cifar.test_images[:20])
    assert torch.equal(loaded.test_labels, cifar.test_labels[:20])


def test_no_data_and_no_network_gives_one_clear_error(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network in this test")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(DatasetNotFoundError) as raised:
        load_cifar10(tmp_path, download=True)
    message = str(raised.value)
    assert "cifar10.npz" in message and "cifar-10-batches-py" in message and data.CIFAR10_URL in message
    assert raised.value.__suppress_context__  # no urllib traceback chained under it


def test_truncated_npz_names_the_file_and_is_left_untouched(tmp_path):
    source = data.data_dir() / "cifar10.npz"
    broken = tmp_path / "cifar10.npz"
    with open(source, "rb") as file:
        broken.write_bytes(file.read(1_000_000))
    before = hashlib.sha256(broken.read_bytes()).hexdigest()
    with pytest.raises(DatasetFormatError, match=str(broken)):
        load_cifar10(tmp_path)
    assert hashlib.sha256(broken.read_bytes()).hexdigest() == before


def test_npz_with_wrong_arrays_is_refused(tmp_path):
    path = tmp_path / "cifar10.npz"
    np.savez(path, x_train=np.zeros((4, 28, 28), np.uint8), y_train=np.zeros(4), x_test=np.zeros((4, 28, 28), np.uint8),
             y_test=np.zeros(4))
    with pytest.raises(DatasetFormatError, match="x_train should be uint8 images"):
        load_cifar10(tmp_path)


def test_subset_is_class_balanced_seeded_and_shuffled(cifar):
    images, labels = subset(cifar.test_images, cifar.test_labels, 200, seed=3)
    assert torch.bincount(labels, minlength=10).tolist() == [20] * 10
    again, _ = subset(cifar.test_images, cifar.test_labels, 200, seed=3)
    other, _ = subset(cifar.test_images, cifar.test_labels, 200, seed=4)
    assert torch.equal(images, again) and not torch.equal(images, other)
    assert labels[:10].unique().numel() > 1  # the test split is class-grouped: the subset must not be
    _, uneven = subset(cifar.test_images, cifar.test_labels, 25)
    assert torch.bincount(uneven, minlength=10).tolist() == [3] * 5 + [2] * 5
    with pytest.raises(ValueError, match="at most 10000"):
        subset(cifar.test_images, cifar.test_labels, 20_000)


def test_tensor_loader_batches_len_and_seeding(tiny):
    loader = TensorLoader(tiny.train_images, tiny.train_labels, batch_size=100, seed=1)
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    assert [len(y) for _, y in batches] == [100, 100, 56]
    assert batches[0][0].dtype == torch.float32 and batches[0][0].shape == (100, 3, 32, 32)
    assert len(TensorLoader(tiny.train_images, tiny.train_labels, batch_size=100, drop_last=True)) == 2
    # Same seed and epoch -> same batches; the next epoch differs.
    loader.set_epoch(0)
    first = next(iter(loader))
    loader.set_epoch(0)
    assert torch.equal(next(iter(loader))[0], first[0])
    assert not torch.equal(next(iter(loader))[0], first[0])  # now epoch 1
    # Every image appears once per epoch.
    all_labels = torch.cat([y for _, y in TensorLoader(tiny.train_images, tiny.train_labels, batch_size=64)])
    assert torch.equal(all_labels.sort().values, tiny.train_labels.sort().values)


def test_tensor_loader_without_augmentation_only_normalises(tiny):
    loader = TensorLoader(tiny.test_images, tiny.test_labels, batch_size=50, augment=False, shuffle=False)
    images, labels = next(iter(loader))
    assert torch.equal(labels, tiny.test_labels[:50])
    reference = transforms.Normalize(data.CIFAR10_MEAN, data.CIFAR10_STD)(tiny.test_images[:50].float() / 255)
    torch.testing.assert_close(images, reference)


def test_crop_and_flip_match_torchvisions_recipe_in_distribution(cifar):
    # Every output of the batched augmentation must be one of torchvision's 9 x 9 x 2 possible
    # outputs of RandomCrop(32, padding=4) + RandomHorizontalFlip, and all must occur about equally.
    image = cifar.train_images[7]
    padded = torch.nn.functional.pad(image, (4, 4, 4, 4))
    possible = {}  # image bytes -> (row offset, column offset, flipped); symmetric crops keep the first
    for dy in range(9):
        for dx in range(9):
            crop = padded[:, dy:dy + 32, dx:dx + 32]
            possible.setdefault(crop.numpy().tobytes(), (dy, dx, False))
            possible.setdefault(crop.flip(2).numpy().tobytes(), (dy, dx, True))

    out = data.random_crop_flip(image.expand(16_200, -1, -1, -1), torch.Generator().manual_seed(0))
    seen = [possible.get(augmented.numpy().tobytes()) for augmented in out]
    assert None not in seen, "an output that torchvision's recipe cannot produce"
    # Offsets uniform over 0..8 in both directions (expected 1/9 each); flips: half.
    for position in (0, 1):
        share = torch.bincount(torch.tensor([key[position] for key in seen]), minlength=9) / len(seen)
        assert (share - 1 / 9).abs().max() < 0.02, share
    assert abs(sum(key[2] for key in seen) / len(seen) - 0.5) < 0.02


def test_image_folder_maps_names_converts_modes_and_resizes(tmp_path, cifar):
    (tmp_path / "cat").mkdir()
    (tmp_path / "ship").mkdir()
    rgb = cifar.test_images[3000].permute(1, 2, 0).numpy()  # a cat (class 3)
    Image.fromarray(rgb).save(tmp_path / "cat" / "a.png")
    Image.fromarray(rgb).convert("L").save(tmp_path / "cat" / "grey.png")
    Image.fromarray(rgb).convert("RGBA").resize((64, 64)).save(tmp_path / "ship" / "rgba.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "ship" / "palette.gif")
    (tmp_path / "ship" / "notes.txt").write_text("not an image")

    with pytest.warns(UserWarning, match="1 file\\(s\\) or folder\\(s\\) not read .*notes.txt"):
        folder = image_folder_dataset(tmp_path, image_size=32)
    assert folder.images.shape == (4, 3, 32, 32) and folder.images.dtype == torch.uint8
    assert len(folder) == 4 and folder[2][1] == 8 and torch.equal(folder[0][0], folder.images[0])
    assert folder.labels.tolist() == [3, 3, 8, 8]  # by name, not by folder order
    assert torch.equal(folder.images[0], cifar.test_images[3000])
    assert torch.equal(folder.images[1][0], folder.images[1][1])  # grey became 3 equal channels
    (tmp_path / "ship" / "notes.txt").unlink()
    assert image_folder_dataset(tmp_path, image_size=64).images.shape[-1] == 64


def test_image_folder_errors_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        image_folder_dataset(tmp_path / "missing")
    with pytest.raises(ValueError, match="no class folders"):
        image_folder_dataset(tmp_path)
    (tmp_path / "kitten").mkdir()
    with pytest.raises(ValueError, match="valid names: airplane, automobile"):
        image_folder_dataset(tmp_path)
    shutil.rmtree(tmp_path / "kitten")
    (tmp_path / "cat").mkdir()
    with pytest.raises(ValueError, match="no images"):
        image_folder_dataset(tmp_path)


def test_export_image_folder_round_trips_and_never_overwrites(tmp_path, tiny):
    paths = data.export_image_folder(tiny.test_images[:12], tiny.test_labels[:12], tmp_path)
    back = image_folder_dataset(tmp_path)
    assert len(paths) == 12
    order = torch.tensor([paths.index(p) for p in back.paths])
    assert torch.equal(back.images, tiny.test_images[:12][order])  # PNG is lossless
    before = paths[0].read_bytes()
    with pytest.raises(FileExistsError):
        data.export_image_folder(tiny.test_images[12:14], tiny.test_labels[:2], tmp_path)
    assert paths[0].read_bytes() == before


def test_measure_loader_speed_counts_images_over_restarts(tiny):
    loader = TensorLoader(tiny.test_images, tiny.test_labels, batch_size=50, augment=False)
    speed = data.measure_loader_speed(loader, seconds=0.2)
    assert speed > 100  # 100 images per pass: far more than one pass happens in 0.2 s


def real_sample_npz(path, y_train=None, y_test=None):
    """A small npz made of real CIFAR-10 images, with the given labels (default: their real ones)."""
    with np.load(data.data_dir() / "cifar10.npz") as arrays:
        x_train, x_test = arrays["x_train"][:20], arrays["x_test"][:10]
        real_train, real_test = arrays["y_train"][:20], arrays["y_test"][:10]
    np.savez(path, x_train=x_train, y_train=real_train if y_train is None else y_train, x_test=x_test,
             y_test=real_test if y_test is None else y_test)


@pytest.mark.parametrize("labels, message", [
    (np.full(20, 10), "y_train has 20 label\\(s\\) outside 0-9 \\(e.g. 10\\)"),
    (np.full(20, -1), "outside 0-9 \\(e.g. -1\\)"),
    (np.full(20, 2.5), "y_train holds float64 values"),
])
def test_npz_labels_outside_the_ten_classes_are_refused_at_load_time(tmp_path, labels, message):
    real_sample_npz(tmp_path / "cifar10.npz", y_train=labels)
    with pytest.raises(DatasetFormatError, match=message):
        load_cifar10(tmp_path)


def test_course_data_dir_expands_the_home_folder(tmp_path, monkeypatch):
    (tmp_path / "cifar").mkdir()
    real_sample_npz(tmp_path / "cifar" / "cifar10.npz")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("COURSE_DATA_DIR", "~/cifar")
    assert data.data_dir() == tmp_path / "cifar"
    assert len(load_cifar10().train_images) == 20


def test_a_dangling_npz_link_is_reported_not_downloaded_over(tmp_path):
    (tmp_path / "cifar10.npz").symlink_to(tmp_path / "moved-away.npz")
    with pytest.raises(DatasetNotFoundError, match="is a broken link: it points to .*moved-away.npz"):
        load_cifar10(tmp_path)
    assert not (tmp_path / "cifar-10-batches-py").exists()  # nothing was downloaded


def cat_picture(cifar) -> np.ndarray:
    return cifar.test_images[3000].permute(1, 2, 0).numpy()  # a real CIFAR-10 cat, HWC uint8


def test_image_folder_shows_photos_the_way_a_viewer_does(tmp_path, cifar):
    (tmp_path / "cat").mkdir()
    rgb = cat_picture(cifar)
    exif = Image.Exif()
    exif[0x0112] = 3  # EXIF orientation: the camera was upside down, rotate by 180 degrees to view
    Image.fromarray(rgb).save(tmp_path / "cat" / "1-upside-down.png", exif=exif)
    grey16 = (np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.uint16) * 257)
    Image.fromarray(grey16).save(tmp_path / "cat" / "2-sixteen-bit.png")  # a 16-bit scanner image
    grey_float = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32) / 255
    Image.fromarray(grey_float, mode="F").save(tmp_path / "cat" / "3-float.tif")
    transparent = np.dstack([rgb, np.zeros(rgb.shape[:2], np.uint8)])
    Image.fromarray(transparent, mode="RGBA").save(tmp_path / "cat" / "4-transparent.png")

    folder = image_folder_dataset(tmp_path)
    assert torch.equal(folder.images[0], torch.from_numpy(rgb[::-1, ::-1].copy()).permute(2, 0, 1))
    grey = torch.from_numpy(np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.int16))
    for index in (1, 2):  # scaled to 8 bits, not clipped to white
        assert (folder.images[index][0].to(torch.int16) - grey).abs().max() <= 1
    assert (folder.images[3] == 255).all()  # fully transparent: the white background


def test_image_folder_names_the_files_it_does_not_use_and_skips_archive_litter(tmp_path, cifar):
    (tmp_path / "cat" / "more").mkdir(parents=True)
    (tmp_path / "__MACOSX").mkdir()
    Image.fromarray(cat_picture(cifar)).save(tmp_path / "cat" / "photo.png")
    (tmp_path / "cat" / "._photo.png").write_bytes(b"AppleDouble")  # macOS metadata: skipped silently
    (tmp_path / "cat" / "IMG_0001.heic").write_bytes(b"HEIC")
    (tmp_path / "cat" / "README").write_text("no extension")
    with pytest.warns(UserWarning) as caught:
        folder = image_folder_dataset(tmp_path)
    message = str(caught[0].message)
    assert "3 file(s) or folder(s) not read" in message
    assert all(name in message for name in ("IMG_0001.heic", "README", "more")) and "._photo" not in message
    assert len(folder) == 1


def test_a_decompression_bomb_is_refused_by_name(tmp_path, cifar, monkeypatch):
    (tmp_path / "cat").mkdir()
    Image.fromarray(cat_picture(cifar)).resize((512, 512)).save(tmp_path / "cat" / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # a 512x512 image now counts as a bomb
    with pytest.raises(ValueError, match="huge.png is too large to read safely"):
        image_folder_dataset(tmp_path)


def test_data_stays_out_of_an_installed_package(tmp_path, monkeypatch):
    checkout = tmp_path / "course"
    checkout.mkdir()
    (checkout / "pyproject.toml").write_text("[project]\nname = 'course_utils'\n")
    assert data.default_data_dir(checkout) == checkout / "data"
    site_packages = tmp_path / "site-packages"
    site_packages.mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.default_data_dir(site_packages) == tmp_path / "home" / ".cache" / "resnet-course"
    assert data.REPO_DATA_DIR == data.default_data_dir(data.Path(data.__file__).resolve().parent.parent)


def test_a_fifo_named_like_an_image_is_left_out_not_read_forever(tmp_path, cifar):
    import os

    (tmp_path / "cat").mkdir()
    Image.fromarray(cifar.test_images[3000].permute(1, 2, 0).numpy()).save(tmp_path / "cat" / "a.png")
    os.mkfifo(tmp_path / "cat" / "pipe.png")  # opening it would wait for a writer that never comes
    with pytest.warns(UserWarning, match="1 file\\(s\\) or folder\\(s\\) not read .*pipe.png"):
        folder = image_folder_dataset(tmp_path, image_size=32)
    assert len(folder) == 1


def test_a_relative_course_data_dir_is_refused_with_the_absolute_path_to_set(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COURSE_DATA_DIR", "data")
    with pytest.raises(ValueError, match=rf"COURSE_DATA_DIR='data' is a relative path.*COURSE_DATA_DIR={tmp_path}/data"):
        data.data_dir()


def test_an_unreadable_class_folder_is_named_with_what_to_do(tmp_path, cifar, monkeypatch):
    (tmp_path / "cat").mkdir()
    Image.fromarray(cifar.test_images[3000].permute(1, 2, 0).numpy()).save(tmp_path / "cat" / "a.png")
    original = type(tmp_path).iterdir

    def iterdir(self):  # this machine's tests run as root, whom no permission stops: refuse as a user's would
        if self.name == "cat":
            raise PermissionError(13, "Permission denied", str(self))
        return original(self)

    monkeypatch.setattr(type(tmp_path), "iterdir", iterdir)
    with pytest.raises(PermissionError, match=r"cannot read the class folder .*cat: .*chmod -R u\+rX"):
        image_folder_dataset(tmp_path)


def test_the_npz_is_decoded_once_and_a_changed_file_is_decoded_again(tmp_path, cifar):
    np.savez(tmp_path / "cifar10.npz", x_train=cifar.train_images[:20].permute(0, 2, 3, 1).numpy(),
             y_train=cifar.train_labels[:20].numpy(), x_test=cifar.test_images[:10].permute(0, 2, 3, 1).numpy(),
             y_test=cifar.test_labels[:10].numpy())
    first = load_cifar10(tmp_path, download=False)
    copy = tmp_path / "cifar10.npz.decoded"
    assert sorted(path.name for path in copy.iterdir()) == ["source.txt", "x_test.npy", "x_train.npy", "y_test.npy",
                                                            "y_train.npy"]
    again = load_cifar10(tmp_path, download=False)  # from the copy: the same tensors
    assert torch.equal(again.train_images, first.train_images) and torch.equal(again.test_labels, first.test_labels)
    np.savez(tmp_path / "cifar10.npz", x_train=cifar.train_images[20:50].permute(0, 2, 3, 1).numpy(),
             y_train=cifar.train_labels[20:50].numpy(), x_test=cifar.test_images[:10].permute(0, 2, 3, 1).numpy(),
             y_test=cifar.test_labels[:10].numpy())
    changed = load_cifar10(tmp_path, download=False)  # a new file: never the stale copy
    assert len(changed.train_images) == 30 and torch.equal(changed.train_images, cifar.train_images[20:50])
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")]  # no half-written copy left
