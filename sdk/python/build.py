"""Build a Python extension into `dist/main.wasm` with componentize-py (offline, ~10 s, ~18 MB).

    .venv/bin/python sdk/python/build.py examples/hello            # -> examples/hello/dist/main.wasm
    .venv/bin/python sdk/python/build.py examples/hello -o out.wasm

The extension directory holds `app.py` (defining `WitWorld = app.export()`); the SDK and the WIT world
(schema/wit) come from this repository.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

SDK_DIR = Path(__file__).resolve().parent
ROOT = SDK_DIR.parent.parent
WIT_DIR = ROOT / "schema" / "wit"


def componentize_py() -> str:
    local = Path(sys.executable).parent / "componentize-py"
    found = str(local) if local.exists() else shutil.which("componentize-py")
    if not found:
        raise SystemExit("componentize-py not found: pip install componentize-py==0.25.1")
    return found


def build(app_dir: Path, out: Path | None = None, *, module: str = "app") -> Path:
    """Componentize `app_dir/<module>.py` against world `runner`; returns the output path."""
    app_dir = app_dir.resolve()
    out = (out or app_dir / "dist" / "main.wasm").resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    cmd = [
        componentize_py(),
        "-d",
        str(WIT_DIR),
        "-w",
        "runner",
        "componentize",
        module,
        "-p",
        str(app_dir),
        "-p",
        str(SDK_DIR),
        "-o",
        str(tmp),
    ]
    proc = subprocess.run(cmd, cwd=app_dir, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"componentize-py failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    tmp.replace(out)  # atomic: a concurrent reader never sees a partial component
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("app_dir", type=Path)
    parser.add_argument("-o", "--out", type=Path, default=None)
    args = parser.parse_args()
    path = build(args.app_dir, args.out)
    sys.stdout.write(f"{path} ({path.stat().st_size} bytes)\n")


if __name__ == "__main__":
    main()
