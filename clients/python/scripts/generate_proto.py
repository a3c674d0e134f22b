#!/usr/bin/env python3
"""Regenerates ``src/ratelimitd/_proto`` from the repository's ``proto/``.

protoc writes imports that mirror the ``.proto`` path, so the contract is
compiled from a copy placed at ``ratelimitd/_proto/ratelimit/v1/``: the code
then imports as ``ratelimitd._proto.ratelimit.v1`` (not a top-level
``ratelimit`` package, which clashes with an existing PyPI module) while the
protobuf package, hence ``/ratelimit.v1.RateLimiter/CheckLimit``, is
unchanged. Run with the pinned grpcio-tools (``constraints.txt``); the test
suite regenerates into a temporary folder and fails when the checked-in code
differs.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
REPOSITORY = PACKAGE_ROOT.parent.parent
CONTRACT = REPOSITORY / "proto" / "ratelimit" / "v1" / "ratelimit.proto"
RELATIVE = Path("ratelimitd") / "_proto" / "ratelimit" / "v1"
GENERATED = ("ratelimit_pb2.py", "ratelimit_pb2.pyi", "ratelimit_pb2_grpc.py")


def generate(out_root: Path) -> list[Path]:
    """Compiles the contract into ``out_root/ratelimitd/_proto/...``.

    Returns the generated files. ``out_root`` is the folder holding the
    ``ratelimitd`` package (``src`` for the real thing).
    """
    with tempfile.TemporaryDirectory() as include:
        source = Path(include) / RELATIVE / "ratelimit.proto"
        source.parent.mkdir(parents=True)
        shutil.copyfile(CONTRACT, source)
        well_known = Path(protoc.__file__).parent / "_proto"
        status = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{include}",
                f"-I{well_known}",
                f"--python_out={out_root}",
                f"--pyi_out={out_root}",
                f"--grpc_python_out={out_root}",
                str(RELATIVE / "ratelimit.proto"),
            ]
        )
        if status != 0:
            raise RuntimeError(f"protoc failed with status {status}")
    package = out_root / RELATIVE
    for folder in (package, package.parent, package.parent.parent):
        (folder / "__init__.py").touch()
    return [package / name for name in GENERATED]


if __name__ == "__main__":
    for path in generate(PACKAGE_ROOT / "src"):
        print(path.relative_to(PACKAGE_ROOT))
    sys.exit(0)
