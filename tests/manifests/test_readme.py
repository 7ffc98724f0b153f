"""The README's cluster sections ("Install on a cluster", "Migrating from Multus",
"Troubleshooting") against the manifests and the code: every name, namespace, flag,
label selector and quoted message they show must be what the rendered manifests and the
webhook really have."""

from __future__ import annotations

import json
import re
import shlex

import pytest
import yaml

from plugin.cni import status
from tests.manifests.dispatch import called, review
from tests.manifests.rendering import (
    FAILURE_POLICIES,
    MANIFESTS,
    NAMESPACE,
    REPO,
    VARIANTS,
    container,
    crd_schema,
    find,
    rendered,
)
from webhook import reviews, server
from webhook.admission import Admission
from webhook.index import MemoryIndex

README = (REPO / "README.md").read_text()
OURS = ("## Install on a cluster", "## Migrating from Multus", "## Troubleshooting")
# kubectl's own flags used in these sections (everything else must be a netplex flag)
KUBECTL_FLAGS = {"--for", "--overwrite"}


def sections() -> str:
    """The three sections, each up to the next second-level heading."""
    parts = []
    for heading in OURS:
        assert f"\n{heading}\n" in README, f"README has no {heading!r} section"
        start = README.index(f"\n{heading}\n") + 1
        following = README.find("\n## ", start + len(heading))
        parts.append(README[start:] if following < 0 else README[start:following + 1])
    return "".join(parts)


def commands() -> list[str]:
    """Every kubectl command line (continuations joined, ``$ `` prompts removed)."""
    text = re.sub(r"\\\n\s*", " ", sections())
    found = []
    for line in text.splitlines():
        line = line.strip().removeprefix("$ ")
        for match in re.finditer(r"`?(kubectl [^`|]+)", line):
            found.append(match.group(1).strip())
    return found


def heredocs() -> list[tuple[str, list[dict], str]]:
    """(command, objects, what follows EOF up to the end of the block) for each heredoc."""
    out = []
    for match in re.finditer(r"^(?:\$ )?cat <<EOF \| (kubectl [^\n]+)\n(.*?)\nEOF\n(.*?)```", sections(), re.S | re.M):
        out.append((match.group(1), [d for d in yaml.safe_load_all(match.group(2)) if d], match.group(3)))
    return out


def all_rendered() -> list[dict]:
    return [obj for variant in VARIANTS for obj in rendered(variant)]


def kubectl_invalid(verdict_review: dict) -> str:
    """What kubectl prints for a denial with reason Invalid and causes (its checkErr)."""
    status_ = verdict_review["response"]["status"]
    assert status_["reason"] == "Invalid"
    causes = [f"{c['field']}: {c['message']}" for c in status_["details"]["causes"]]
    assert len(causes) == 1, "the README shows single-problem examples"
    return f"The request is invalid: {causes[0]}"


def test_every_kustomization_the_readme_applies_or_deletes_exists_and_renders():
    paths = {m.group(1) for c in commands() for m in [re.search(r" -k (\S+)", c)] if m}
    assert paths >= {"manifests/", "manifests/overlays/cert-manager", "manifests/overlays/thin-plugin-only",
                     "manifests/overlays/thin"}
    known = {str(p.relative_to(REPO)).rstrip("/") for p in VARIANTS.values()}
    for path in paths:
        assert path.rstrip("/") in known, f"README applies {path}, which is not a rendered variant"
        assert (REPO / path / "kustomization.yaml").is_file()


def test_every_namespaced_object_the_readme_names_exists_there():
    kinds = {"daemonset": "DaemonSet", "deployment": "Deployment", "certificate": "Certificate"}
    checked = 0
    for command in commands():
        namespace = re.search(r" -n (\S+)", command)
        mentioned = re.findall(r"\b(daemonset|deployment)/([a-z0-9-]+)", command)
        mentioned += re.findall(r"get (certificate) (\S+)", command)
        for kind, name in mentioned:
            assert namespace and namespace.group(1) == NAMESPACE, command
            variant = "cert-manager" if kind == "certificate" else "base"
            assert find(rendered(variant), kinds[kind], name)["metadata"]["namespace"] == NAMESPACE
            checked += 1
    assert checked >= 5


def test_every_netplex_name_in_the_readme_is_a_real_object_command_or_secret():
    from certs import kube

    names = {o["metadata"]["name"] for o in all_rendered()}
    for obj in all_rendered():
        if obj["kind"] == "Certificate":
            names.add(obj["spec"]["secretName"])
        for hook in obj.get("webhooks", []):
            names.add(hook["name"])
    names |= {kube.CA_SECRET, "netplex-webhook", "netplex-install"}
    text = sections()
    mentioned = set(re.findall(r"(?<![\w/.-])(netplex-[a-z0-9-]*[a-z0-9])(?![\w-])", text))
    mentioned |= set(re.findall(r"\b[a-z-]+\.(?:validate|mutate)\.netplex\.io\b", text))
    unknown = sorted(mentioned - names)
    assert not unknown, f"README names things the manifests do not have: {unknown}"
    assert {"netplex-node", "netplex-webhook", "netplex-policy", "netplex-mutating", "netplex-validating",
            "netplex-webhook-ca", "netplex-webhook-tls", "netplex-system"} <= mentioned


def test_every_flag_the_readme_mentions_is_accepted_and_used_as_described():
    install = pytest.importorskip("plugin.node.install", reason="the node installer (plugin/node/install.py) is not there")
    accepted = {a for action in server.build_parser()._actions for a in action.option_strings}
    accepted |= {a for parser in install.build_parser()._subparsers._group_actions[0].choices.values()
                 for action in parser._actions for a in action.option_strings}
    flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", sections()))
    unknown = sorted(flags - accepted - KUBECTL_FLAGS)
    assert not unknown, f"README mentions flags no netplex command has: {unknown}"
    base = container(find(rendered("base"), "Deployment", "netplex-webhook"), "webhook")["args"]
    overlay = container(find(rendered("cert-manager"), "Deployment", "netplex-webhook"), "webhook")["args"]
    assert "netplex-webhook --self-signed" in sections() and "--self-signed" in base
    assert "--tls-cert`/`--tls-key" in sections()
    assert any(a.startswith("--tls-cert=") for a in overlay) and any(a.startswith("--tls-key=") for a in overlay)


def test_the_uninstall_switch_is_the_daemonsets_variable():
    (command,) = [c for c in commands() if " set env " in c]
    words = shlex.split(command)
    assert words[:5] == ["kubectl", "-n", NAMESPACE, "set", "env"]
    kind, name = words[5].split("/")
    variable, value = words[6].split("=")
    ds = find(rendered("base"), {"daemonset": "DaemonSet"}[kind], name)
    env = {e["name"]: e["value"] for e in container(ds, "install")["env"]}
    assert variable in env and value == "true" and env[variable] == "false"


def test_the_readme_label_selectors_pick_what_they_say():
    objects = rendered("base")
    pods = {
        "webhook": find(objects, "Deployment", "netplex-webhook")["spec"]["template"]["metadata"]["labels"],
        "node": find(objects, "DaemonSet", "netplex-node")["spec"]["template"]["metadata"]["labels"],
    }
    for component in ("webhook", "node"):
        assert f"-l app.kubernetes.io/component={component}" in sections()
        assert pods[component]["app.kubernetes.io/component"] == component
    assert "-l 'app.kubernetes.io/component!=crd'" in sections()
    for variant in VARIANTS:
        crd = [o for o in rendered(variant)
               if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "crd"]
        assert [o["kind"] for o in crd] == ["CustomResourceDefinition"], variant


def test_the_crd_named_in_the_readme_is_the_one_installed():
    assert "kubectl get crd network-attachment-definitions.k8s.cni.cncf.io" in sections()
    find(rendered("thin-plugin-only"), "CustomResourceDefinition", "network-attachment-definitions.k8s.cni.cncf.io")
    assert "kubectl get net-attach-def" in sections()
    crd = find(rendered("base"), "CustomResourceDefinition", "network-attachment-definitions.k8s.cni.cncf.io")
    assert "net-attach-def" in crd["spec"]["names"]["shortNames"]


def _walkthrough() -> tuple[dict, dict, dict, str]:
    docs = heredocs()
    assert len(docs) == 3, f"expected the NAD, the good pod and the broken pod, got {len(docs)} heredocs"
    (_, [nad], _), (_, [good], _), (_, [broken], after) = docs
    return nad, good, broken, after


def test_the_walkthrough_nad_is_the_seeds_macvlan_conf_and_fits_the_crd():
    import jsonschema

    nad, _, _, _ = _walkthrough()
    seeds = yaml.safe_load_all((REPO / "tests" / "fixtures" / "seeds" / "nads.yaml").read_text())
    seed = next(d for d in seeds if d and d["metadata"]["name"] == "macvlan-conf")
    assert nad["metadata"]["name"] == "macvlan-conf"
    assert json.loads(nad["spec"]["config"]) == json.loads(seed["spec"]["config"])
    jsonschema.validate(nad, crd_schema())


def test_the_walkthrough_pod_is_admitted_and_selects_macvlan_conf():
    nad, good, _, _ = _walkthrough()
    assert good["metadata"]["annotations"] == {"k8s.v1.cni.cncf.io/networks": "macvlan-conf"}
    assert f"kubectl exec -it {good['metadata']['name']} -- ip a" in sections()
    verdict = Admission(MemoryIndex([nad])).validate(review("Pod", "CREATE", good))
    assert verdict.allowed, verdict.message
    assert not verdict.warnings


def test_the_broken_pod_gets_exactly_the_rejection_the_readme_shows():
    nad, _, broken, after = _walkthrough()
    request = review("Pod", "CREATE", broken)
    verdict = Admission(MemoryIndex([nad])).validate(request)
    assert not verdict.allowed
    rendered_review = reviews.render("admission.k8s.io/v1", request["uid"], verdict)
    assert after.strip() == kubectl_invalid(rendered_review)
    # The API server's message (what controllers' events show) starts as the README says.
    (hook,) = [h for h in called(request) if ".validate." in h]
    api_message = f'admission webhook "{hook}" denied the request: {verdict.message}'
    shown = re.search(r"`(admission webhook\s+\"[^`]*?)…", sections()).group(1)
    assert api_message.startswith(re.sub(r"\s+", " ", shown))


def _annotate(command: str) -> dict[str, str | None]:
    words = shlex.split(command)
    assert words[:4] == ["kubectl", "annotate", "namespace", "default"], command
    out: dict[str, str | None] = {}
    for word in words[4:]:
        if word.startswith("--"):
            continue
        if word.endswith("-"):
            out[word[:-1]] = None
        else:
            key, value = word.split("=", 1)
            out[key] = value
    return out


def test_the_namespace_policy_commands_are_admitted_or_refused_as_shown():
    nad, good, _, _ = _walkthrough()
    annotate = [c for c in commands() if c.startswith("kubectl annotate namespace")]
    assert len(annotate) == 3, annotate
    policy_cmd, typo_cmd, remove_cmd = annotate
    policy = {k: v for k, v in _annotate(policy_cmd).items() if v is not None}
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default", "annotations": policy}}
    before = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}
    admission = Admission(MemoryIndex([nad, namespace]))
    assert admission.validate(review("Namespace", "UPDATE", namespace, before)).allowed
    verdict = admission.validate(review("Pod", "CREATE", good))
    assert verdict.allowed, f"the walkthrough's pod breaks the walkthrough's policy: {verdict.message}"

    typo = {**policy, **{k: v for k, v in _annotate(typo_cmd).items() if v is not None}}
    changed = {**namespace, "metadata": {"name": "default", "annotations": typo}}
    request = review("Namespace", "UPDATE", changed, namespace)
    verdict = admission.validate(request)
    assert not verdict.allowed
    shown = re.search(rf"\$ {re.escape(typo_cmd)}\n(.*)\n", sections()).group(1)
    assert shown == kubectl_invalid(reviews.render("admission.k8s.io/v1", request["uid"], verdict))
    assert set(_annotate(remove_cmd)) == set(policy) and all(v is None for v in _annotate(remove_cmd).values())


def test_the_network_status_shown_is_one_the_plugin_could_write():
    match = re.search(r"network-status\}'\n(\[.*?\n\])\n", sections(), re.S)
    assert match, "no network-status sample after the jsonpath command"
    assert status.NETWORK_STATUS_ANNOTATION == "k8s.v1.cni.cncf.io/network-status"
    assert r"{.metadata.annotations.k8s\.v1\.cni\.cncf\.io/network-status}" in sections()
    entries = status.loads(match.group(1))
    assert status.check_statuses(entries) == []
    assert [e.interface for e in entries] == ["eth0", "net1"]
    assert entries[1].name == "default/macvlan-conf"


def test_the_troubleshooting_table_states_each_webhooks_failure_policy():
    rows = [line for line in sections().splitlines() if line.startswith("| `")]
    stated: dict[str, str] = {}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        for name in re.findall(r"`([a-z.-]+\.netplex\.io)`", cells[0]):
            stated[name] = cells[1]
    assert stated == FAILURE_POLICIES


def test_the_migration_check_command_runs_the_webhooks_rules_on_stdin():
    (command,) = [c for c in commands() if "net-attach-def,pods" in c]
    assert "-o yaml" in command
    assert re.search(r"-o yaml\s*\n?\s*\| netplexctl check -", re.sub(r"\\\n", "", sections()))
    from webhook import ctl

    args = ctl.build_parser().parse_args(["check", "-"])
    assert args.command == "check"


def test_the_install_section_mentions_each_manifest_directory_it_describes():
    for directory in ("manifests/webhook/",):
        assert (MANIFESTS / directory.removeprefix("manifests/")).is_dir()
        assert f"`{directory}*.yaml`" in sections()


def test_the_daemon_down_message_is_what_the_shim_prints(tmp_path):
    """The shim as the installer writes it, no daemon, an ADD of the generated conflist's
    kind (no kubeconfig): the CNI error the runtime shows in the pod's event."""
    from tests.plugin.thick import run_shim, write_shim

    sock = "/run/netplex/netplex.sock"
    shown = re.search(r"\*\*`(the netplex-node daemon is not running: [^`]*)`\*\*", sections())
    assert shown, "Troubleshooting does not quote the daemon-down message"
    assert f"cannot connect to {sock} (No such file or directory)" in re.sub(r"\s+", " ", shown.group(1))
    shim = write_shim(tmp_path / "bin", tmp_path / "run" / "netplex.sock")
    config = {"cniVersion": "1.0.0", "name": "netplex", "type": "netplex",
              "delegates": [{"cniVersion": "1.0.0", "name": "cbr0", "type": "bridge"}]}
    environ = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/none", "CNI_IFNAME": "eth0",
               "CNI_PATH": str(tmp_path / "bin"), "PATH": "/usr/bin:/bin"}
    done = run_shim(shim, environ, json.dumps(config).encode())
    error = json.loads(done.stdout)
    assert done.returncode == 1
    assert error["code"] == 11
    expected = re.sub(r"\s+", " ", shown.group(1)).replace(sock, str(tmp_path / "run" / "netplex.sock"))
    assert error["msg"] == expected
    assert "--thin-fallback" in error["details"] and "--thin-fallback" in sections()


def test_the_other_shim_messages_quoted_are_the_shims():
    source = (REPO / "plugin" / "node" / "shim.py").read_text()
    for quoted in ("netplex-node did not answer within", "netplex-node stopped before answering",
                   "netplex-node is not running and the thin plugin is missing"):
        assert f"**`{quoted}" in sections(), quoted
        assert f'"{quoted}' in source or f'f"{quoted}' in source, quoted
