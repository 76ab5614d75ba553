"""The committed generated code is exactly what scripts/gen-proto makes from proto/.

Regenerates every target into a temporary tree and compares it, file by file, with the tree
under src/, so an edited .proto without regenerated code (or a hand-edited _pb2) fails here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_generated_code_matches_the_protos(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHON=sys.executable)
    subprocess.run(
        [str(REPO / "scripts" / "gen-proto"), "--out", str(tmp_path)],
        cwd=REPO, env=env, check=True, timeout=120, capture_output=True,
    )  # fmt: skip
    generated = _files(tmp_path)
    assert "gossamer/demo/gen/emoji_pb2.py" in generated
    assert "gossamer/demo/gen/voting_pb2_grpc.py" in generated
    # Every package the script wrote must be committed identically, with nothing extra.
    for package in {str(Path(name).parent) for name in generated}:
        committed = _files(REPO / "src" / package)
        fresh = {
            name: data for name, data in generated.items() if str(Path(name).parent) == package
        }
        committed = {f"{package}/{name}": data for name, data in committed.items()}
        stale = sorted(
            name
            for name in committed.keys() | fresh.keys()
            if committed.get(name) != fresh.get(name)
        )
        assert not stale, f"run scripts/gen-proto: these differ from proto/: {stale}"


def test_generated_modules_import_by_package_path() -> None:
    from gossamer.demo.gen import emoji_pb2, voting_pb2_grpc

    assert emoji_pb2.DESCRIPTOR.package == "gossamer.demo.v1"
    assert hasattr(voting_pb2_grpc, "VotingServiceStub")
