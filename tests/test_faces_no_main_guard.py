"""preprocess from a script without a main guard ends with a clear error, never hangs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap


def test_workers_dying_at_start_up_end_preprocess_with_a_clear_error(require_data, tmp_path):
    real = require_data("ckplus48")
    root = tmp_path / "ckplus48"
    for emotion in ("anger", "happy"):
        (root / emotion).mkdir(parents=True)
        for png in sorted((real / emotion).glob("*.png"))[:4]:
            shutil.copy(png, root / emotion / png.name)
    script = tmp_path / "no_guard.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from pathnet_fer.faces.preprocess import preprocess_dataset
            from pathnet_fer.faces.settings import FaceSettings
            preprocess_dataset("ckplus48", {str(root)!r}, FaceSettings(size=16),
                               cache_dir={str(tmp_path / "cache")!r}, workers=2,
                               progress=False)
            print("returned")
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode != 0
    assert "returned" not in done.stdout
    assert 'if __name__ == "__main__":' in done.stderr.strip().splitlines()[-1]
