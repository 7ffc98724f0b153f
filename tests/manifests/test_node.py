"""The netplex-node DaemonSet in each mode: thick (installer + daemon) by default and in
the overlays that keep it, thin (installer alone, --mode=thin) in overlays/thin and
wherever components/thin is added. The flags are parsed by the programs' own parsers and
the paths compared with the constants the code uses, so that a path changed on one side
fails here rather than on a node."""

from __future__ import annotations

import os

import pytest

from plugin.cni import commands, config
from plugin.node import daemon, install
from tests.manifests.rendering import (
    ALL,
    BASE,
    THICK_VARIANTS,
    THIN_VARIANTS,
    container,
    find,
    rendered,
)

# The host paths the daemon needs, each mounted at the same path (the paths in a CNI
# request, in the conflist and in the delegates' own state then mean the same inside).
DAEMON_HOST_PATHS = {
    "/opt/cni/bin": {"readOnly": True},
    "/etc/cni": {"readOnly": True},
    "/var/lib/cni": {},
    "/run/netns": {"mountPropagation": "HostToContainer"},
    "/var/lib/kubelet/device-plugins": {"readOnly": True},
    "/var/run/k8s.cni.cncf.io/devinfo": {},
    "/run/netplex": {},
}


def daemonset(variant: str) -> dict:
    return find(rendered(variant), "DaemonSet", "netplex-node")


def pod_spec(variant: str) -> dict:
    return daemonset(variant)["spec"]["template"]["spec"]


def names(variant: str) -> list[str]:
    return [c["name"] for c in pod_spec(variant)["containers"]]


def install_options(variant: str) -> install.Options:
    ctr = container(daemonset(variant), "install")
    environ = {e["name"]: e["value"] for e in ctr["env"]}
    opts = install.options_from(install.build_parser().parse_args([*ctr["command"][1:], *ctr["args"]]), environ)
    assert isinstance(opts, install.Options), opts
    return opts


def daemon_args(variant: str) -> object:
    ctr = container(daemonset(variant), "daemon")
    assert ctr["command"] == ["netplex-node", "run"]
    return daemon.parse_args([*ctr["command"][1:], *ctr["args"]])


def mounts(variant: str, name: str) -> dict[str, dict]:
    """mountPath -> the mount, with its volume under "volume"."""
    volumes = {v["name"]: v for v in pod_spec(variant)["volumes"]}
    return {m["mountPath"]: {**m, "volume": volumes[m["name"]]} for m in container(daemonset(variant), name)
            ["volumeMounts"]}


# ------------------------------------------------------------------------ thick


@pytest.mark.parametrize("variant", THICK_VARIANTS)
def test_thick_node_pods_run_the_installer_in_thick_mode_and_the_daemon(variant):
    assert names(variant) == ["install", "daemon"]
    opts = install_options(variant)
    assert (opts.mode, opts.thin_fallback) == ("thick", False), "no API credentials on the host by default"
    assert "--mode=thick" in container(daemonset(variant), "install")["args"], "the mode is stated, not implied"
    image = {c["image"] for c in pod_spec(variant)["containers"]}
    assert len(image) == 1, "one image serves both containers"


@pytest.mark.parametrize("variant", THICK_VARIANTS)
def test_the_shim_and_the_daemon_and_its_probe_agree_on_the_socket(variant):
    args = daemon_args(variant)
    probe = container(daemonset(variant), "daemon")["readinessProbe"]["exec"]["command"]
    assert probe[:2] == ["netplex-node", "ready"]
    probed = daemon.parse_args(probe[1:])
    assert args.socket == probed.socket == install_options(variant).socket == daemon.DEFAULT_SOCKET
    assert probed.command == "ready"
    socket_dir = mounts(variant, "daemon")[os.path.dirname(args.socket)]
    assert socket_dir["volume"]["hostPath"]["path"] == os.path.dirname(args.socket), (
        "the shim on the host connects to the host path the installer wrote into it")


@pytest.mark.parametrize("variant", THICK_VARIANTS)
def test_the_daemon_mounts_each_host_path_it_needs_at_the_same_path(variant):
    found = mounts(variant, "daemon")
    assert set(found) - {daemon_args(variant).chroot} == set(DAEMON_HOST_PATHS)
    for path, settings in DAEMON_HOST_PATHS.items():
        mount = found[path]
        assert mount["volume"]["hostPath"]["path"] == path, path
        assert mount.get("readOnly", False) == settings.get("readOnly", False), path
        assert mount.get("mountPropagation", "None") == settings.get("mountPropagation", "None"), path


@pytest.mark.parametrize("variant", THICK_VARIANTS)
def test_the_daemon_runs_delegates_in_the_hosts_root_which_it_mounts_with_later_mounts(variant):
    chroot = daemon_args(variant).chroot
    assert chroot == "/host"
    root = mounts(variant, "daemon")[chroot]
    assert root["volume"]["hostPath"]["path"] == "/"
    assert root.get("mountPropagation") == "HostToContainer"
    assert not root.get("readOnly", False), "delegates keep their state on the host"


def test_the_daemon_mounts_cover_the_paths_the_plugin_code_uses():
    found = mounts(BASE, "daemon")

    def mounted(path: str) -> dict:
        best = max((m for m in found if path == m or path.startswith(m.rstrip("/") + "/")), key=len, default=None)
        assert best is not None, f"{path} is not under any mount of the daemon container"
        return found[best]

    assert not mounted(config.DEFAULT_CNI_DIR).get("readOnly"), "the cache is written on ADD"
    assert not mounted(commands.DEVINFO_DIR).get("readOnly"), "device-info files are written for the pod"
    assert mounted(config.DEFAULT_CHECKPOINT)
    assert mounted(config.DEFAULT_BIN_DIR)
    assert mounted(config.DEFAULT_CONF_DIR)  # NADs without a config name a file there
    assert mounted(install.DEFAULT_CONF_DIR)
    assert mounted(os.path.dirname(daemon.DEFAULT_SOCKET))


@pytest.mark.parametrize("variant", THICK_VARIANTS)
def test_the_daemon_runs_privileged_in_the_hosts_network_and_pid_namespaces(variant):
    spec = pod_spec(variant)
    context = container(daemonset(variant), "daemon")["securityContext"]
    assert context["privileged"] is True, "delegates write /proc/sys and /sys and setns into pod netns"
    assert context["runAsUser"] == 0 and context["runAsNonRoot"] is False
    assert spec["hostNetwork"] is True
    assert spec["hostPID"] is True, "CNI_NETNS may be /proc/<pid>/ns/net of a host process"


@pytest.mark.parametrize("variant", THICK_VARIANTS)
def test_the_daemon_gets_no_service_link_variables_its_delegates_would_inherit(variant):
    assert pod_spec(variant)["enableServiceLinks"] is False


@pytest.mark.parametrize("variant", THICK_VARIANTS)
def test_the_daemon_knows_its_node_for_events(variant):
    env = {e["name"]: e for e in container(daemonset(variant), "daemon")["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"


@pytest.mark.parametrize("variant", THICK_VARIANTS)
def test_the_daemon_may_finish_requests_in_flight_before_it_is_killed(variant):
    args = daemon_args(variant)
    grace = pod_spec(variant)["terminationGracePeriodSeconds"]
    assert 0 < args.shutdown_timeout < grace, (
        f"--shutdown-timeout {args.shutdown_timeout}s must fit in terminationGracePeriodSeconds {grace}s")
    assert "--kubeconfig" not in " ".join(container(daemonset(variant), "daemon")["args"]), (
        "the daemon uses its pod's service account, not a file")


def test_a_bad_daemon_argument_would_be_caught_here(capsys):
    ctr = container(daemonset(BASE), "daemon")
    with pytest.raises(SystemExit):
        daemon.parse_args([*ctr["command"][1:], *ctr["args"], "--max-concurrent=0"])
    assert "argument --max-concurrent: must be at least 1, got 0" in capsys.readouterr().err


# ------------------------------------------------------------------------ thin


@pytest.mark.parametrize("variant", THIN_VARIANTS)
def test_thin_node_pods_run_the_installer_alone_in_thin_mode(variant):
    assert names(variant) == ["install"]
    assert install_options(variant).mode == "thin"
    spec = pod_spec(variant)
    assert "hostPID" not in spec, "nothing in thin mode needs the host's PID namespace"
    assert spec["hostNetwork"] is True
    assert spec["terminationGracePeriodSeconds"] <= 10, "only the installer is left to stop"


@pytest.mark.parametrize("variant", THIN_VARIANTS)
def test_thin_mode_changes_only_the_mode_of_the_installer(variant):
    """The component repeats the installer's args (a list is replaced whole): any other
    difference from the base would be drift."""
    base = install_options(BASE)
    thin = install_options(variant)
    assert thin.mode == "thin"
    assert {**vars_of(thin), "mode": "thick", "socket": base.socket} == vars_of(base)
    assert container(daemonset(variant), "install")["env"] == container(daemonset(BASE), "install")["env"]


def vars_of(opts: install.Options) -> dict:
    return {name: getattr(opts, name) for name in opts.__slots__}


# ------------------------------------------------------------------------ every variant


@pytest.mark.parametrize("variant", ALL)
def test_every_volume_is_mounted_by_a_container(variant):
    """Removing the daemon must remove its host paths too (and no mount may dangle)."""
    spec = pod_spec(variant)
    used = {m["name"] for c in spec["containers"] for m in c["volumeMounts"]}
    assert {v["name"] for v in spec["volumes"]} == used


@pytest.mark.parametrize("variant", ALL)
def test_the_installer_keeps_its_host_root_and_own_state(variant):
    found = mounts(variant, "install")
    assert set(found) == {"/host", "/run/netplex"}
    assert found["/host"]["volume"]["hostPath"]["path"] == "/"
    assert "emptyDir" in found["/run/netplex"]["volume"], "the installer's readiness record is its own"
    assert install_options(variant).state_dir == "/run/netplex"
