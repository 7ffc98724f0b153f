"""``netplexctl certs`` writing files: what is written, which CA signs, and the errors."""

from __future__ import annotations

import base64
import datetime
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from certs.authority import new_authority
from certs.command import default_kubeconfig

from .conftest import run_ctl

DAY = datetime.timedelta(days=1)


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_out_dir_gets_a_ca_a_serving_pair_and_the_bundle(tmp_path: Path) -> None:
    out = tmp_path / "pki"

    code, stdout, stderr = run_ctl("certs", "--out-dir", str(out), "--san", "10.96.0.10")

    assert (code, stderr) == (0, "")
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert modes == {"ca.crt": 0o644, "ca.key": 0o600, "tls.crt": 0o644, "tls.key": 0o600, "ca-bundle.b64": 0o644}
    serving, ca = cert(out / "tls.crt"), cert(out / "ca.crt")
    serving.verify_directly_issued_by(ca)
    assert base64.b64decode((out / "ca-bundle.b64").read_text()) == (out / "ca.crt").read_bytes()
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in sans] == [
        "netplex-webhook", "netplex-webhook.netplex-system", "netplex-webhook.netplex-system.svc",
        "netplex-webhook.netplex-system.svc.cluster.local", "10.96.0.10",
    ]
    lines = stdout.splitlines()
    assert lines[0].startswith("CA: new ECDSA P-256: CN=netplex-webhook CA (SANs none; expires ")
    assert lines[1].startswith("serving certificate (ECDSA P-256): CN=netplex-webhook.netplex-system.svc (SANs ")
    assert lines[2] == "wrote " + ", ".join(str(out / n) for n in
                                            ("ca.key", "ca.crt", "tls.key", "tls.crt", "ca-bundle.b64"))


def test_service_and_namespace_name_the_certificate(tmp_path: Path) -> None:
    code, _, _ = run_ctl("certs", "--out-dir", str(tmp_path), "--service", "wh", "-n", "tenant",
                         "--cluster-domain", "corp.example")

    sans = cert(tmp_path / "tls.crt").extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert code == 0
    assert sans.get_values_for_type(x509.DNSName) == ["wh", "wh.tenant", "wh.tenant.svc", "wh.tenant.svc.corp.example"]


def test_days_sets_the_end_of_the_serving_certificate(tmp_path: Path) -> None:
    before = datetime.datetime.now(datetime.UTC)
    code, _, _ = run_ctl("certs", "--out-dir", str(tmp_path), "--days", "30", "--ca-days", "400")
    after = datetime.datetime.now(datetime.UTC)

    assert code == 0
    for name, days in (("tls.crt", 30), ("ca.crt", 400)):
        end = cert(tmp_path / name).not_valid_after_utc
        assert before.replace(microsecond=0) + days * DAY <= end <= after + days * DAY


def test_rsa_with_a_size_makes_rsa_keys(tmp_path: Path) -> None:
    code, stdout, _ = run_ctl("certs", "--out-dir", str(tmp_path), "--key-type", "rsa", "--rsa-bits", "3072")

    assert code == 0
    for name in ("tls.crt", "ca.crt"):
        key = cert(tmp_path / name).public_key()
        assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 3072
    assert "serving certificate (RSA 3072): " in stdout


def test_running_again_keeps_the_ca_and_issues_a_new_serving_certificate(tmp_path: Path) -> None:
    run_ctl("certs", "--out-dir", str(tmp_path))
    first_ca, first_key = (tmp_path / "ca.crt").read_bytes(), (tmp_path / "ca.key").read_bytes()
    first_serial = cert(tmp_path / "tls.crt").serial_number

    code, stdout, _ = run_ctl("certs", "--out-dir", str(tmp_path))

    assert code == 0
    assert (tmp_path / "ca.crt").read_bytes() == first_ca and (tmp_path / "ca.key").read_bytes() == first_key
    assert cert(tmp_path / "tls.crt").serial_number != first_serial
    cert(tmp_path / "tls.crt").verify_directly_issued_by(cert(tmp_path / "ca.crt"))
    assert stdout.startswith(f"CA: from {tmp_path / 'ca.crt'}: CN=netplex-webhook CA")


def test_new_ca_replaces_the_ca_in_out_dir(tmp_path: Path) -> None:
    run_ctl("certs", "--out-dir", str(tmp_path))
    first_ca = (tmp_path / "ca.crt").read_bytes()

    code, _, _ = run_ctl("certs", "--out-dir", str(tmp_path), "--new-ca")

    assert code == 0 and (tmp_path / "ca.crt").read_bytes() != first_ca
    cert(tmp_path / "tls.crt").verify_directly_issued_by(cert(tmp_path / "ca.crt"))


def test_a_given_ca_signs_and_its_key_is_not_copied(tmp_path: Path) -> None:
    ca = new_authority()
    (tmp_path / "my-ca.crt").write_bytes(ca.cert_pem)
    (tmp_path / "my-ca.key").write_bytes(ca.key_pem)
    out = tmp_path / "out"

    code, _, _ = run_ctl("certs", "--out-dir", str(out), "--ca-cert", str(tmp_path / "my-ca.crt"),
                         "--ca-key", str(tmp_path / "my-ca.key"))

    assert code == 0
    cert(out / "tls.crt").verify_directly_issued_by(ca.cert)
    assert (out / "ca.crt").read_bytes() == ca.cert_pem
    assert not (out / "ca.key").exists()


def test_a_ca_ending_before_the_days_asked_cuts_the_certificate_and_warns(tmp_path: Path) -> None:
    run_ctl("certs", "--out-dir", str(tmp_path), "--ca-days", "10")

    code, _, stderr = run_ctl("certs", "--out-dir", str(tmp_path), "--days", "365")

    assert code == 0
    assert cert(tmp_path / "tls.crt").not_valid_after_utc == cert(tmp_path / "ca.crt").not_valid_after_utc
    assert stderr == ("netplexctl certs: warning: the serving certificate ends with its CA, before the 365 days "
                      "asked for; make a new CA (--new-ca) to issue for longer\n")


# -- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "nothing to do: give --out-dir DIR to write files, --apply to write to the cluster, or both"),
        (["--out-dir", "d", "--ca-cert", "ca.crt"], "--ca-cert and --ca-key go together; --ca-key is missing"),
        (["--out-dir", "d", "--ca-key", "ca.key"], "--ca-cert and --ca-key go together; --ca-cert is missing"),
        (["--out-dir", "d", "--new-ca", "--ca-cert", "c", "--ca-key", "k"],
         "--new-ca cannot be combined with --ca-cert/--ca-key; choose one"),
        (["--out-dir", "d", "--rsa-bits", "4096"], "--rsa-bits 4096 goes with --key-type rsa"),
        (["--out-dir", "d", "--days", "0"], "--days 0: must be at least 1"),
        (["--out-dir", "d", "--ca-days", "-1"], "--ca-days -1: must be at least 1"),
        (["--out-dir", "d", "--kubeconfig", "kc"], "--kubeconfig is only used with --apply"),
        (["--out-dir", "d", "--drop-previous-ca"], "--drop-previous-ca is only used with --apply"),
    ],
)
def test_flag_combinations_that_make_no_sense_exit_2_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)

    code, stdout, stderr = run_ctl("certs", *argv)

    assert (code, stdout, stderr) == (2, "", f"netplexctl certs: error: {message}\n")
    assert list(tmp_path.iterdir()) == []


def test_argparse_refuses_an_rsa_size_it_does_not_know(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run_ctl("certs", "--out-dir", "d", "--key-type", "rsa", "--rsa-bits", "1024")

    assert code == 2
    assert "argument --rsa-bits: invalid choice: 1024 (choose from 2048, 3072, 4096)" in capsys.readouterr().err


def test_bad_sans_are_all_reported_and_nothing_is_written(tmp_path: Path) -> None:
    code, stdout, stderr = run_ctl("certs", "--out-dir", str(tmp_path / "out"), "--san", "my_host",
                                   "--san", "10.0.0.1:443")

    assert (code, stdout) == (2, "")
    assert stderr.splitlines() == [
        "netplexctl certs: --san: \"my_host\" is not a valid DNS name (a DNS-1123 subdomain: it has a part \"my_host\" "
        "that contains '_'); use lowercase letters, digits, '-' and '.', each dot-separated part starting and ending "
        "with a letter or digit, at most 253 characters",
        'netplexctl certs: --san: "10.0.0.1:443" is not an IP address nor a DNS name; write an address without brackets or a port',
    ]
    assert not (tmp_path / "out").exists()


def test_a_bad_service_name_is_refused(tmp_path: Path) -> None:
    code, _, stderr = run_ctl("certs", "--out-dir", str(tmp_path), "--service", "Web_Hook")

    assert code == 2
    assert stderr == ("netplexctl certs: \"Web_Hook\" is not a valid Service name (a DNS-1123 label: it contains "
                      "uppercase 'W'); use lowercase letters, digits and '-', starting and ending with a letter or "
                      "digit, at most 63 characters\n")


def test_a_missing_ca_file_is_named(tmp_path: Path) -> None:
    code, _, stderr = run_ctl("certs", "--out-dir", str(tmp_path), "--ca-cert", str(tmp_path / "nope.crt"),
                              "--ca-key", str(tmp_path / "nope.key"))

    assert code == 2
    assert stderr == f"netplexctl certs: cannot read CA certificate {tmp_path / 'nope.crt'}: No such file or directory\n"


def test_an_expired_ca_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    long_ago = datetime.datetime.now(datetime.UTC) - 30 * DAY
    ca = new_authority(now=long_ago, days=10)
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    (tmp_path / "ca.key").write_bytes(ca.key_pem)

    code, _, stderr = run_ctl("certs", "--out-dir", str(tmp_path))

    assert code == 2
    assert stderr == (f"netplexctl certs: {tmp_path / 'ca.crt'}: CN=netplex-webhook CA expired on "
                      f"{ca.cert.not_valid_after_utc.isoformat()}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.crt", "ca.key"]


def test_half_a_ca_in_out_dir_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_bytes(new_authority().cert_pem)

    code, _, stderr = run_ctl("certs", "--out-dir", str(tmp_path))

    assert code == 2
    assert stderr == (f"netplexctl certs: {tmp_path / 'ca.crt'} exists but {tmp_path / 'ca.key'} does not; "
                      "give --ca-cert and --ca-key, or --new-ca to replace the CA\n")


def test_a_serving_certificate_given_as_ca_is_refused(tmp_path: Path) -> None:
    run_ctl("certs", "--out-dir", str(tmp_path / "a"))

    code, _, stderr = run_ctl("certs", "--out-dir", str(tmp_path / "b"), "--ca-cert", str(tmp_path / "a/tls.crt"),
                              "--ca-key", str(tmp_path / "a/tls.key"))

    assert code == 2
    assert stderr == (f"netplexctl certs: --ca-cert {tmp_path / 'a/tls.crt'}: CN=netplex-webhook.netplex-system.svc "
                      "is not a CA (no BasicConstraints ca=true); give the CA's certificate, not a serving "
                      "certificate\n")


def test_the_default_kubeconfig_follows_kubectl(tmp_path: Path) -> None:
    assert default_kubeconfig({"KUBECONFIG": "/a/kc:/b/kc"}, tmp_path) == "/a/kc"
    assert default_kubeconfig({}, tmp_path) is None
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text("")
    assert default_kubeconfig({"KUBECONFIG": ""}, tmp_path) == str(tmp_path / ".kube" / "config")
