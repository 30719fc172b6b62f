"""CIFAR-10 onto the GPU machine, in parts: the device tool carries at most 64 MiB a call (the working
tree included) and the machine reaches no network, while data/cifar10.npz is 171 MB. So the file
travels in parts, one per call, each appended to a file on the (still warm) machine, and the last
call checks the whole file's SHA-256 before anything trains on it.

    python tools/gpu_data_parts.py split            # here: .gpu-data/part-0 ... and .gpu-data/manifest.json
    python tools/gpu_data_parts.py commands         # the shell command of each device call, in order

Each call carries one part (``carry: [".gpu-data/part-K", ".gpu-data/manifest.json"]``) and runs its
command; the parts land in /tmp/cifar10 on the machine, which keeps them while it stays warm (about
30 s after a call: make the calls one after another). The last command joins and checks them; then
``COURSE_DATA_DIR=/tmp/cifar10`` points the course at the copy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PARTS = REPO / ".gpu-data"  # ignored by git (.git/info/exclude or .gitignore): it must not be committed
DEVICE_FOLDER = "/tmp/cifar10"


def split(source: Path, mib: float, folder: Path = PARTS) -> list[Path]:
    """Cut ``source`` into parts of at most ``mib`` MiB in ``folder``, with a manifest of sizes and SHA-256."""
    folder.mkdir(exist_ok=True)
    for old in folder.glob("part-*"):
        old.unlink()
    data = source.read_bytes()
    size = int(mib * 2**20)
    parts = []
    for index, start in enumerate(range(0, len(data), size)):
        part = folder / f"part-{index}"
        part.write_bytes(data[start:start + size])
        parts.append(part)
    manifest = {"file": source.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                "parts": [{"name": part.name, "bytes": part.stat().st_size,
                           "sha256": hashlib.sha256(part.read_bytes()).hexdigest()} for part in parts]}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return parts


def device_commands(manifest: dict) -> list[str]:
    """One shell command per device call: append this call's part (checked), and after the last part
    check the whole file and put it where COURSE_DATA_DIR will point."""
    commands = []
    for index, part in enumerate(manifest["parts"]):
        command = (f"mkdir -p {DEVICE_FOLDER} && echo '{part['sha256']}  .gpu-data/{part['name']}' | sha256sum -c - "
                   f"&& cat .gpu-data/{part['name']} >> {DEVICE_FOLDER}/partial")
        if index == len(manifest["parts"]) - 1:
            command += (f" && echo '{manifest['sha256']}  {DEVICE_FOLDER}/partial' | sha256sum -c - "
                        f"&& mv {DEVICE_FOLDER}/partial {DEVICE_FOLDER}/{manifest['file']}")
        commands.append(command)
    return commands


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("split", "commands"))
    parser.add_argument("--source", default=str(REPO / "data" / "cifar10.npz"))
    parser.add_argument("--mib", type=float, default=41, help="largest part in MiB: 4 parts, each beside the working "
                        "tree (about 18 MB) within the 64 MiB a call carries")
    args = parser.parse_args(argv)
    if args.action == "split":
        source = Path(args.source).expanduser()
        if not source.is_file():
            print(f"error: no {source}; link or copy CIFAR-10 there first (data/README.md)", file=sys.stderr)
            return 2
        parts = split(source, args.mib)
        print(f"{len(parts)} part(s) of at most {args.mib:g} MiB in {PARTS}; device commands: "
              f"python tools/gpu_data_parts.py commands")
        return 0
    manifest_path = PARTS / "manifest.json"
    if not manifest_path.is_file():
        print("error: no parts yet: python tools/gpu_data_parts.py split", file=sys.stderr)
        return 2
    for index, command in enumerate(device_commands(json.loads(manifest_path.read_text()))):
        print(f"call {index + 1}: carry .gpu-data/part-{index}; command: {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
