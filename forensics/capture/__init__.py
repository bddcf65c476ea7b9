"""Capture: getting a checkpoint off a node and into safe keeping.

``kube`` finds what to checkpoint (kubeconfig or in-cluster access, pod and
container resolution); ``kubelet`` asks a node's kubelet for the checkpoint
through the Checkpoint API (via the API server's node proxy, or directly);
their failures are the typed errors of ``errors``.

Storing the archive is :mod:`forensics.storage`; running the whole capture
(pipeline, steps, Argo) is :mod:`forensics.orchestration`. External tools
run through :mod:`forensics.run`.
"""
