"""Build the plugin as one executable file for nodes that have python3 but no virtualenv.

    python -m plugin.pack --output dist/netplex

The result is a zipapp (PEP 441) holding only the ``plugin`` package (standard library
only, so nothing else is needed on the node) with ``#!/usr/bin/env python3`` and
``plugin.main:console_main`` as entry point. The node installer copies it to
``/opt/cni/bin/netplex``. Byte-compiled files are included so a cold start does not
compile on every pod.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import stat
import sys
import tempfile
import zipapp
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
SKIP = {"pack.py", "__pycache__"}
SKIP_PREFIXES = ("install",)  # the node installer runs in its container, never on the node


def build(output: Path, interpreter: str = "/usr/bin/env python3") -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp) / "app"
        target = staging / "plugin"
        target.mkdir(parents=True)
        for source in sorted(PACKAGE.iterdir()):
            if source.name in SKIP or source.name.startswith(SKIP_PREFIXES) or source.suffix != ".py":
                continue
            shutil.copy2(source, target / source.name)
        compileall.compile_dir(str(target), quiet=1, legacy=True)
        output.parent.mkdir(parents=True, exist_ok=True)
        partial = output.with_name(f".{output.name}.tmp")
        zipapp.create_archive(staging, partial, interpreter=interpreter, main="plugin.main:console_main",
                              compressed=False)
        os.chmod(partial, os.stat(partial).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        os.replace(partial, output)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("dist/netplex"))
    parser.add_argument("--python", default="/usr/bin/env python3", help="interpreter line of the file")
    args = parser.parse_args(argv)
    print(build(args.output, args.python))
    return 0


if __name__ == "__main__":
    sys.exit(main())
