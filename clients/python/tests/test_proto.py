"""The generated code is what the pinned grpcio-tools makes of proto/ today."""

from __future__ import annotations

from pathlib import Path

from scripts.generate_proto import PACKAGE_ROOT, generate


def test_generated_code_is_not_stale(tmp_path: Path) -> None:
    for fresh in generate(tmp_path):
        shipped = PACKAGE_ROOT / "src" / fresh.relative_to(tmp_path)
        assert shipped.read_bytes() == fresh.read_bytes(), (
            f"{shipped.relative_to(PACKAGE_ROOT)} is stale: run scripts/generate_proto.py"
        )
