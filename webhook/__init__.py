"""netplex's admission webhook: validation and mutation of pods, workloads, NADs, namespaces."""
