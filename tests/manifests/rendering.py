"""The kustomizations, rendered by the real kubectl, and helpers to look into them.

- :func:`rendered`: the objects of each directory users apply with ``kubectl apply -k``
  (the base and each overlay, :data:`VARIANTS`), rendered once per session with
  ``kubectl kustomize`` (kubectl's built-in kustomize, the one ``apply -k`` uses), and of
  the combinations the manifests document (:data:`COMPOSED`: an overlay as a resource
  plus ``components/thin``), rendered from a kustomization written to a temporary
  directory exactly as a user would write it.
  Without kubectl on PATH the tests that need a rendering are skipped, saying so;
  everything else still runs.
- :func:`find`: one object of a rendering by kind and name, failing with the names that
  exist when it is not there; :func:`container`, :func:`of_kind`, :func:`ref` likewise.
- :data:`FAILURE_POLICIES`: the failurePolicy chosen for each webhook entry;
  :func:`crd_schema`: the schema of the NetworkAttachmentDefinition CRD.
"""

from __future__ import annotations

import copy
import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
NAMESPACE = "netplex-system"
IMAGE = "ghcr.io/netplex/netplex:0.1.0"

BASE = "base"
CERT_MANAGER = "cert-manager"
PLUGIN_ONLY = "thin-plugin-only"  # no webhook; thick mode like the base
THIN = "thin"  # the per-call plugin, no daemon
VARIANTS = {
    BASE: MANIFESTS,
    CERT_MANAGER: MANIFESTS / "overlays" / "cert-manager",
    PLUGIN_ONLY: MANIFESTS / "overlays" / "thin-plugin-only",
    THIN: MANIFESTS / "overlays" / "thin",
}
THIN_COMPONENT = MANIFESTS / "components" / "thin"
# Documented combinations: (the overlay applied as a resource, the components added).
COMPOSED = {
    "thin-plugin-only+thin": (PLUGIN_ONLY, (THIN_COMPONENT,)),
    "cert-manager+thin": (CERT_MANAGER, (THIN_COMPONENT,)),
}
WITH_WEBHOOK = (BASE, CERT_MANAGER, THIN)
THICK_VARIANTS = (BASE, CERT_MANAGER, PLUGIN_ONLY)
THIN_VARIANTS = (THIN, *COMPOSED)
ALL = (*VARIANTS, *COMPOSED)

Rendered = list[dict[str, Any]]


def kubectl() -> str | None:
    return shutil.which("kubectl")


def render(directory: Path) -> Rendered:
    """``kubectl kustomize DIR`` as a list of objects; a failure shows kubectl's stderr."""
    binary = kubectl()
    if binary is None:
        pytest.skip("kubectl is not on PATH: the kustomizations cannot be rendered")
    done = subprocess.run(
        [binary, "kustomize", str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"kubectl kustomize {directory} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc is not None]


def rendered(variant: str) -> Rendered:
    """The objects of one variant (rendered once, a fresh copy each call)."""
    return copy.deepcopy(_rendered(variant))


@functools.cache
def _rendered(variant: str) -> Rendered:
    if variant in COMPOSED:
        return _render_composed(*COMPOSED[variant])
    return render(VARIANTS[variant])


def _render_composed(resource: str, components: tuple[Path, ...]) -> Rendered:
    """A user's own kustomization: one of our overlays plus components, by relative path
    (kustomize refuses absolute ones)."""
    with tempfile.TemporaryDirectory() as tmp:
        def rel(path: Path) -> str:
            return os.path.relpath(path, tmp)
        document = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                    "resources": [rel(VARIANTS[resource])], "components": [rel(c) for c in components]}
        (Path(tmp) / "kustomization.yaml").write_text(yaml.safe_dump(document))
        return render(Path(tmp))


def find(objects: Rendered, kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    have = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objects)
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)} among {have}"
    return matches[0]


def of_kind(objects: Rendered, kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def ref(obj: Mapping[str, Any]) -> str:
    meta = obj["metadata"]
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj['kind']}/{where}{meta['name']}"


def container(pod_owner: Mapping[str, Any], name: str) -> dict[str, Any]:
    containers = pod_owner["spec"]["template"]["spec"]["containers"]
    matches = [c for c in containers if c["name"] == name]
    assert len(matches) == 1, f"{ref(pod_owner)}: expected one container {name!r}, got {[c['name'] for c in containers]}"
    return matches[0]


# Every webhook entry and the failurePolicy chosen for it (explained in the YAML comments
# of manifests/webhook/ and in the README's troubleshooting table).
FAILURE_POLICIES = {
    "pods.mutate.netplex.io": "Ignore",
    "pods.validate.netplex.io": "Fail",
    "pod-updates.validate.netplex.io": "Fail",
    "network-attachment-definitions.validate.netplex.io": "Fail",
    "namespaces.validate.netplex.io": "Fail",
    "workloads.validate.netplex.io": "Ignore",
    "cronjobs.validate.netplex.io": "Ignore",
}
NAD_CRD = "network-attachment-definitions.k8s.cni.cncf.io"


def crd_schema() -> dict[str, Any]:
    """The openAPIV3Schema of the NetworkAttachmentDefinition CRD netplex installs."""
    crd = find(rendered(PLUGIN_ONLY), "CustomResourceDefinition", NAD_CRD)
    (version,) = crd["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]
