# netplex: one image for the admission webhook (`netplex-webhook`) and both containers of
# the node DaemonSet: the installer (`netplex-install`, which puts the shim and the
# single-file CNI plugin onto each node) and the thick-mode daemon (`netplex-node`,
# which serves the shim's socket and runs the delegates).
#
#   docker build -t ghcr.io/netplex/netplex:0.1.0 .
#
# There is no ENTRYPOINT: the webhook Deployment and the node DaemonSet's containers each
# set their `command`; CMD only prints the webhook's usage for a bare `docker run`.
# Both stages use the same base so that the virtualenv's interpreter link
# (/opt/netplex/bin/python -> /usr/local/bin/python3.12) holds in the final image.

# --- builder: netplex and its dependencies into a virtualenv, and the plugin zipapp -----
FROM python:3.12.8-slim-bookworm AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY plugin/ plugin/
COPY webhook/ webhook/
COPY certs/ certs/
# Every dependency ships wheels for this Python; nothing is compiled (the slim base has
# no compiler, so a dependency that needs one fails here instead of growing the image).
RUN python -m venv /opt/netplex \
 && /opt/netplex/bin/pip install /src
# The CNI plugin as one executable file (standard library only, `#!/usr/bin/env python3`):
# the node installer's default --plugin (installed as /opt/cni/bin/netplex-thin in thick
# mode, the shim's fallback; as /opt/cni/bin/netplex in thin mode). The shim itself is
# rendered by the installer from the installed package (plugin/node/shim.py). Its byte code is for this Python; on a node with
# another python3 it compiles itself once into /var/lib/cni/netplex/.code (plugin/node/pack.py).
RUN /opt/netplex/bin/python -m plugin.node.pack --output /usr/local/lib/netplex/netplex

# --- final: the installed environment and the zipapp, nothing else ----------------------
FROM python:3.12.8-slim-bookworm
ENV PATH=/opt/netplex/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=builder /opt/netplex /opt/netplex
COPY --from=builder /usr/local/lib/netplex/netplex /usr/local/lib/netplex/netplex
# Non-root by default: the webhook runs as this user (runAsNonRoot, read-only root file
# system). The node DaemonSet overrides it with runAsUser: 0 and privileged: true, because
# the installer chroots into the host root and writes /opt/cni/bin and /etc/cni/net.d,
# and the daemon runs the delegates that set up pod network namespaces.
USER 10001:10001
CMD ["netplex-webhook", "--help"]
