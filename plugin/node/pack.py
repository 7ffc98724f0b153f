"""Build the plugin as one executable file for nodes that have python3 but no virtualenv.

    python -m plugin.node.pack --output dist/netplex

The result is a zipapp (PEP 441) holding only the ``plugin`` package (standard library
only, so nothing else is needed on the node) with ``#!/usr/bin/env python3`` and
``plugin.cni.main:console_main`` as entry point. The node installer copies it to
``/opt/cni/bin/netplex``. Byte-compiled files are included so a cold start does not
compile on every pod.

Byte code is for the Python that built the file, and zipimport cannot cache byte code
for another one: on a node whose ``python3`` is another minor version, every ADD and DEL
would compile the plugin from source (~100 ms here). So the archive's ``__main__`` compares
the interpreter's magic number with the build's and, when they differ, unpacks the
sources once into a cache compiled by that interpreter (``/var/lib/cni/netplex/.code``,
root-owned and not writable by others, else ignored; ``NETPLEX_CODE_CACHE`` moves it)
and imports from there. A cache it cannot use only costs speed, never correctness.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import importlib.util
import os
import shutil
import stat
import sys
import tempfile
import zipapp
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
SHIPPED = ("model", "cni")  # plugin/node (installer, packer) runs in its container, never on the node


MAIN = """\
# The netplex CNI plugin, built by `python -m plugin.node.pack` (see plugin/node/pack.py).
import sys

BUILD = {build!r}
MAGIC = {magic!r}


def _use_code_cache():
    import _frozen_importlib_external as bootstrap

    if bootstrap.MAGIC_NUMBER == MAGIC:
        return  # the byte code in this archive is for this interpreter
    import os

    root = os.environ.get("NETPLEX_CODE_CACHE") or "/var/lib/cni/netplex/.code"
    target = os.path.join(root, BUILD + "-" + bootstrap.MAGIC_NUMBER.hex())
    try:
        os.makedirs(root, mode=0o700, exist_ok=True)
        owner = os.stat(root)
        if owner.st_uid != os.geteuid() or owner.st_mode & 0o022:
            return  # somebody else could put code there: run from the archive instead
        if not os.path.isdir(target):
            _unpack(os.path.dirname(os.path.abspath(__file__)), root, target)
    except OSError:
        return  # cannot cache here: compile from the archive's sources (slower, same result)
    sys.path.insert(0, target)


def _unpack(archive, root, target):
    import compileall
    import os
    import shutil
    import tempfile
    import zipfile

    tmp = tempfile.mkdtemp(dir=root)
    try:
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if name.startswith("plugin/") and name.endswith(".py"):
                    zf.extract(name, tmp)
        compileall.compile_dir(tmp, quiet=2)
        os.rename(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not os.path.isdir(target):  # else another call won the race
            raise


_use_code_cache()
from plugin.cni.main import console_main  # noqa: E402

console_main()
"""


def build(output: Path, interpreter: str = "/usr/bin/env python3", *, magic: bytes | None = None) -> Path:
    """``magic`` stands in for this interpreter's byte-code magic number (tests only)."""
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp) / "app"
        target = staging / "plugin"
        target.mkdir(parents=True)
        digest = hashlib.sha256()
        sources = [PACKAGE / "__init__.py"]
        for package in SHIPPED:
            sources += sorted((PACKAGE / package).rglob("*.py"))  # sub-packages too (model/netconf)
        for source in sources:
            relative = source.relative_to(PACKAGE)
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / relative)
            digest.update(str(relative).encode() + b"\0" + source.read_bytes())
        compileall.compile_dir(str(target), quiet=1, legacy=True)
        build_id = digest.hexdigest()[:16]
        (staging / "__main__.py").write_text(
            MAIN.format(build=build_id, magic=magic if magic is not None else importlib.util.MAGIC_NUMBER)
        )
        output.parent.mkdir(parents=True, exist_ok=True)
        partial = output.with_name(f".{output.name}.tmp")
        zipapp.create_archive(staging, partial, interpreter=interpreter, compressed=False)
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
