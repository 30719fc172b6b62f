"""course_utils.checkpoint: atomic saves, safe strict loads, exact resume."""

import os
from pathlib import Path

import pytest
import torch

from course_utils.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from course_utils.data import TensorLoader
from course_utils.models import resnet18
from course_utils.training import fit, seed_everything


def small_model(seed=0, width=4):
    seed_everything(seed)
    return resnet18(width=width)


class Marker:
    """Unpickling this object would create a file: proof that code ran."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_round_trip_restores_weights_and_records(tmp_path):
    model = small_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    path = save_checkpoint(tmp_path / "a.pt", model, optimizer, epoch=4, note="hello")
    other = small_model(seed=1)
    info = load_checkpoint(path, other)
    for key, value in model.state_dict().items():
        assert torch.equal(other.state_dict()[key], value)
    assert info.epoch == 4 and info.meta["note"] == "hello"
    assert info.arch == {"name": "resnet18", "num_classes": 10, "stem": "cifar", "width": 4}


def test_pickled_code_is_refused_not_executed(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"model_state": small_model().state_dict(), "payload": Marker(marker)}, path)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_checkpoint(path, small_model())
    assert not marker.exists()


def test_interrupted_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "run.pt", small_model(seed=0), epoch=1)
    before = path.read_bytes()

    def crash_midway(obj, file, *args, **kwargs):
        file.write(b"partial bytes")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, small_model(seed=1), epoch=2)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["run.pt"]  # no temporary file left behind


def test_missing_and_truncated_files_give_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nope.pt", small_model())
    path = save_checkpoint(tmp_path / "full.pt", small_model())
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated.pt is not a readable checkpoint"):
        load_checkpoint(truncated, small_model())


def test_mismatch_lists_missing_unexpected_and_wrong_shape_keys_and_loads_nothing(tmp_path):
    path = save_checkpoint(tmp_path / "w4.pt", small_model(width=4))
    wider = small_model(width=8)
    before = {k: v.clone() for k, v in wider.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"keys with another shape: conv1.weight: file \(4, 3, 3, 3\) vs model \(8, 3, 3, 3\)"):
        load_checkpoint(path, wider)
    assert all(torch.equal(before[k], v) for k, v in wider.state_dict().items())

    weights = small_model().state_dict()
    weights["extra.weight"] = torch.zeros(1)
    del weights["fc.bias"]
    torch.save(weights, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(tmp_path / "odd.pt", small_model())
    assert "1 key missing (in the model, not in the file): fc.bias" in str(raised.value)
    assert "1 key unexpected (in the file, not in the model): extra.weight" in str(raised.value)


def test_plain_state_dict_and_module_prefix_are_accepted(tmp_path):
    model = small_model(seed=2)
    # A DataParallel/DDP-style file, as torch.save(model.state_dict()) writes from a wrapped model.
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "ddp.pt")
    fresh = small_model(seed=5)
    info = load_checkpoint(tmp_path / "ddp.pt", fresh)
    assert info.epoch is None
    assert torch.equal(fresh.fc.weight, model.fc.weight)


def test_resume_gives_the_same_weights_as_training_straight_through(tmp_path, tiny):
    def setup():
        model = small_model(seed=7)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
        loader = TensorLoader(tiny.train_images, tiny.train_labels, batch_size=64, seed=0)
        return model, optimizer, scheduler, loader

    model, optimizer, scheduler, loader = setup()
    straight = fit(model, loader, epochs=2, optimizer=optimizer, scheduler=scheduler, progress=False)

    first, optimizer, scheduler, loader = setup()
    fit(first, loader, epochs=1, optimizer=optimizer, scheduler=scheduler,
        checkpoint_path=tmp_path / "resume.pt", progress=False)

    resumed, optimizer, scheduler, loader = setup()
    info = load_checkpoint(tmp_path / "resume.pt", resumed, optimizer, scheduler)
    assert info.epoch == 1 and info.history.epochs_done == 1
    history = fit(resumed, loader, epochs=2, optimizer=optimizer, scheduler=scheduler, history=info.history,
                  progress=False)

    assert history.step_loss == straight.step_loss
    assert history.step_lr == straight.step_lr
    for key, value in model.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key


def test_non_plain_run_facts_are_stored_as_plain_data_and_the_file_loads(tmp_path):
    import numpy as np

    from course_utils.history import History

    model = small_model()
    history = History(step_loss=[np.float32(2.3)], config={"lr": np.float64(0.1), "out": tmp_path, "steps": (1, 2)})
    path = save_checkpoint(tmp_path / "run.pt", model, history=history, epoch=np.int64(3), folder=tmp_path)
    loaded = load_checkpoint(path, small_model(seed=1))  # weights_only: would refuse NumPy or Path objects
    assert loaded.epoch == 3 and loaded.meta["folder"] == str(tmp_path)
    assert loaded.history.config == {"lr": 0.1, "out": str(tmp_path), "steps": [1, 2]}
    assert loaded.history.step_loss == [pytest.approx(2.3)]


def test_compiled_model_keys_load_like_data_parallel_ones(tmp_path):
    model = small_model()
    weights = {f"_orig_mod.{key}": value for key, value in model.state_dict().items()}
    torch.save(weights, tmp_path / "compiled.pt")
    fresh = small_model(seed=1)
    load_checkpoint(tmp_path / "compiled.pt", fresh)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))


@pytest.mark.parametrize("content, message", [
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 1234\n", "git-LFS pointer"),
    (b"<!DOCTYPE html><html><body>Sign in</body></html>", "web page \\(HTML\\)"),
    (b"just some text", "not a PyTorch file"),
])
def test_files_that_are_not_checkpoints_say_what_they_are(tmp_path, content, message):
    (tmp_path / "model.pt").write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tmp_path / "model.pt", small_model())


def test_an_optimiser_state_that_does_not_fit_changes_no_weights(tmp_path):
    model = small_model()
    optimizer = torch.optim.SGD([{"params": list(model.parameters())[:2]}, {"params": list(model.parameters())[2:]}],
                                lr=0.1)
    path = save_checkpoint(tmp_path / "two-groups.pt", model, optimizer)
    other = small_model(seed=1)
    before = [p.detach().clone() for p in other.parameters()]
    with pytest.raises(CheckpointError, match="does not fit this optimiser"):
        load_checkpoint(path, other, torch.optim.SGD(other.parameters(), lr=0.1))
    assert all(torch.equal(a, b) for a, b in zip(before, other.parameters()))


def test_leftovers_of_an_interrupted_save_are_cleaned_up_but_a_save_under_way_is_not(tmp_path):
    import os
    import subprocess
    import time

    finished = subprocess.Popen(["true"])
    finished.wait()  # a process that has ended: its temporary file is a leftover
    dead = tmp_path / f".model.pt.{finished.pid}.abc123.tmp"
    old = tmp_path / ".model.pt.abc123.tmp"  # named the earlier way, without a process id, an hour old
    live = tmp_path / f".model.pt.{os.getppid()}.def456.tmp"  # another process's save, still running
    for leftover in (dead, old, live):
        leftover.write_bytes(b"half a checkpoint")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    save_checkpoint(tmp_path / "model.pt", small_model())
    assert not dead.exists() and not old.exists() and (tmp_path / "model.pt").exists()
    assert live.exists()


def test_a_file_that_is_not_a_checkpoint_is_never_overwritten(tmp_path, tiny):
    from course_utils.data import TensorLoader
    from course_utils.training import fit

    notes = tmp_path / "notes.json"
    notes.write_text('{"my": "results"}')
    with pytest.raises(FileExistsError, match="is not a checkpoint: refusing to overwrite it"):
        save_checkpoint(notes, small_model())
    model = small_model()
    loader = TensorLoader(tiny.train_images[:64], tiny.train_labels[:64], batch_size=64)
    with pytest.raises(FileExistsError, match="not a checkpoint"):  # before any training
        fit(model, loader, epochs=1, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), checkpoint_path=notes,
            progress=False)
    assert notes.read_text() == '{"my": "results"}'
    save_checkpoint(tmp_path / "model.pt", small_model())
    save_checkpoint(tmp_path / "model.pt", small_model())  # a checkpoint is replaced, as before


def test_a_checkpoint_saved_through_a_link_or_with_a_tilde_lands_where_it_points(tmp_path, monkeypatch):
    target = tmp_path / "real" / "model.pt"
    save_checkpoint(target, small_model())
    link = tmp_path / "latest.pt"
    link.symlink_to(target)
    save_checkpoint(link, small_model(width=8))
    assert link.is_symlink() and load_checkpoint(link, small_model(width=8))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert save_checkpoint("~/home.pt", small_model()) == tmp_path / "home.pt"


def test_a_flipped_bit_in_the_weights_is_detected(tmp_path):
    path = save_checkpoint(tmp_path / "model.pt", small_model(width=8))
    raw = bytearray(path.read_bytes())
    position = int(len(raw) * 0.6)  # inside the stored tensors, which are most of the file
    raw[position] ^= 0x10
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="damaged|not a readable checkpoint"):
        load_checkpoint(path, small_model(width=8))


def test_a_scheduler_state_of_another_kind_is_refused_before_any_weight_changes(tmp_path):
    model = small_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    step = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10)
    path = save_checkpoint(tmp_path / "model.pt", model, optimizer, step)
    other = small_model(seed=1)
    before = [p.detach().clone() for p in other.parameters()]
    other_optimizer = torch.optim.SGD(other.parameters(), lr=0.1)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(other_optimizer, T_max=10)
    with pytest.raises(CheckpointError, match="does not fit this CosineAnnealingLR"):
        load_checkpoint(path, other, other_optimizer, cosine)
    assert all(torch.equal(a, b) for a, b in zip(before, other.parameters()))


def test_a_model_whose_own_keys_start_with_module_loads_its_checkpoint(tmp_path):
    # torch.optim.swa_utils.AveragedModel (SWA, EMA) keeps the network in .module.
    from torch.optim.swa_utils import AveragedModel

    averaged = AveragedModel(small_model())
    path = save_checkpoint(tmp_path / "averaged.pt", averaged)
    again = AveragedModel(small_model(seed=1))
    load_checkpoint(path, again)
    assert all(torch.equal(a, b) for a, b in zip(averaged.state_dict().values(), again.state_dict().values()))
    plain = save_checkpoint(tmp_path / "plain.pt", small_model())  # a plain network's file into an AveragedModel
    with pytest.raises(CheckpointError, match="n_averaged"):
        load_checkpoint(plain, AveragedModel(small_model()))  # its own counter is missing, and said so


def test_a_state_dict_without_batchnorm_step_counters_loads_as_torch_loads_it(tmp_path):
    seed_everything(0)
    weights = {key: value for key, value in resnet18(width=4).state_dict().items()
               if not key.endswith("num_batches_tracked")}  # as older PyTorch and some exporters write them
    torch.save(weights, tmp_path / "exported.pt")
    model = resnet18(width=4)
    load_checkpoint(tmp_path / "exported.pt", model)
    assert all(torch.equal(model.state_dict()[key], value) for key, value in weights.items())


def test_a_checkpoint_whose_history_is_of_a_newer_format_changes_nothing(tmp_path):
    from course_utils.history import History

    seed_everything(0)
    saved = resnet18(width=4)
    save_checkpoint(tmp_path / "new.pt", saved, history=History(step_loss=[1.0], step_lr=[0.1]))
    state = torch.load(tmp_path / "new.pt", weights_only=True)
    state["history"]["format"] = "course_utils.History/2"
    torch.save(state, tmp_path / "new.pt")
    seed_everything(1)
    model = resnet18(width=4)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"newer format \('course_utils.History/2'.*update the course's code"):
        load_checkpoint(tmp_path / "new.pt", model)
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())
