"""tools/gpu_data_parts.py: CIFAR-10 cut into parts small enough for the GPU machine's transfers, and the
device commands that join them, checked, into the file the course reads."""

import importlib.util
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("gpu_data_parts", REPO / "tools" / "gpu_data_parts.py")
gpu_data_parts = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_data_parts)


def test_the_parts_join_into_the_same_file_and_a_damaged_part_stops_the_join(tmp_path, monkeypatch):
    source = tmp_path / "cifar10.npz"
    with open(REPO / "data" / "cifar10.npz", "rb") as file:  # the real file's first 3 MB: splitting is bytes
        source.write_bytes(file.read(3 * 2**20 + 12345))
    parts = gpu_data_parts.split(source, mib=1, folder=tmp_path / ".gpu-data")
    assert [part.name for part in parts] == ["part-0", "part-1", "part-2", "part-3"]
    manifest = __import__("json").loads((tmp_path / ".gpu-data" / "manifest.json").read_text())
    device = tmp_path / "device"
    monkeypatch.setattr(gpu_data_parts, "DEVICE_FOLDER", str(device))
    commands = gpu_data_parts.device_commands(manifest)
    assert len(commands) == 4 and "sha256sum -c" in commands[-1]
    for command in commands:  # one device call each, run from the repository's root there
        subprocess.run(["bash", "-ec", command], cwd=tmp_path, check=True, capture_output=True)
    assert (device / "cifar10.npz").read_bytes() == source.read_bytes() and not (device / "partial").exists()

    (tmp_path / ".gpu-data" / "part-1").write_bytes(b"damaged in transit")
    failed = subprocess.run(["bash", "-ec", commands[1]], cwd=tmp_path, capture_output=True, text=True)
    assert failed.returncode != 0 and "FAILED" in failed.stdout + failed.stderr
