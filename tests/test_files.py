"""atomic_path: the one way the project writes files."""
import os
import stat

import pytest

from chimerax.struc2map.files import atomic_path


def test_replaces_target_with_umask_permissions(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    old_mask = os.umask(0o022)
    try:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"new")
            assert target.read_bytes() == b"old"  # nothing visible until the end
    finally:
        os.umask(old_mask)
    assert target.read_bytes() == b"new" and stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_failure_keeps_target_and_leaves_nothing(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target, suffix=".part") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["out.bin"]
