import os
import stat

from crevnet.io.atomic import atomic_write_bytes


def test_atomic_files_get_the_umask_mode_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        target = tmp_path / "report.json"
        atomic_write_bytes(target, b"{}")
        assert stat.S_IMODE(target.stat().st_mode) == 0o644
        assert target.read_bytes() == b"{}"
        assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temp file left
    finally:
        os.umask(old)
