"""certs.files: atomic writes with safe permissions."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from certs import CertsError
from certs.files import outputs, write_atomic, write_outputs


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """A umask that would leave keys readable by all: modes must not depend on it."""
    old = os.umask(0o000)
    yield
    os.umask(old)


def test_keys_are_0600_certificates_0644_and_a_new_directory_0700(tmp_path: Path) -> None:
    out = tmp_path / "new" / "certs"
    files = outputs(ca_cert=b"CA", ca_key=b"CAKEY", cert=b"CERT", key=b"KEY", bundle="QkFTRTY0")

    written = write_outputs(out, files)

    assert [p.name for p in written] == ["ca.key", "ca.crt", "tls.key", "tls.crt", "ca-bundle.b64"]
    assert {p.name: mode(p) for p in written} == {
        "ca.key": 0o600, "ca.crt": 0o644, "tls.key": 0o600, "tls.crt": 0o644, "ca-bundle.b64": 0o644,
    }
    assert mode(out) == 0o700
    assert (out / "ca-bundle.b64").read_text() == "QkFTRTY0\n"
    assert sorted(p.name for p in out.iterdir()) == ["ca-bundle.b64", "ca.crt", "ca.key", "tls.crt", "tls.key"]


def test_without_a_ca_key_none_is_written(tmp_path: Path) -> None:
    files = outputs(ca_cert=b"CA", ca_key=None, cert=b"CERT", key=b"KEY", bundle="x")

    assert [f.name for f in files] == ["ca.crt", "tls.key", "tls.crt", "ca-bundle.b64"]


def test_a_rewrite_replaces_the_file_by_rename_and_fixes_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "tls.key"
    path.write_bytes(b"old")
    path.chmod(0o666)
    old_inode = path.stat().st_ino
    reader = path.open("rb")  # a reader that opened the old file keeps reading the old content

    write_atomic(path, b"new", 0o600)

    assert path.read_bytes() == b"new" and mode(path) == 0o600
    assert path.stat().st_ino != old_inode
    assert reader.read() == b"old"
    reader.close()
    assert [p.name for p in tmp_path.iterdir()] == ["tls.key"]  # no temporary file left


def test_a_failed_write_says_which_file_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "tls.crt"
    target.mkdir()  # a directory where the file should go: the rename fails

    with pytest.raises(CertsError) as caught:
        write_atomic(target, b"x", 0o644)

    assert str(caught.value) == f"cannot write {target}: Is a directory"
    assert [p.name for p in tmp_path.iterdir()] == ["tls.crt"]


def test_an_output_directory_that_cannot_be_made_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")

    with pytest.raises(CertsError) as caught:
        write_outputs(blocker / "out", [])

    assert str(caught.value) == f"cannot create directory {blocker / 'out'}: Not a directory"
