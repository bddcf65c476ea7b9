"""Capture: getting a checkpoint off a node and into safe keeping.

``kube`` finds what to checkpoint (kubeconfig or in-cluster access, pod and
container resolution); ``kubelet`` asks a node's kubelet for the checkpoint
through the Checkpoint API (via the API server's node proxy, or directly);
their failures are the typed errors of ``errors``.

``registry`` stores checkpoint archives as OCI images (a registry through the
native OCI Distribution client or buildah, or an OCI image layout directory
under the csi home when no registry is configured) and brings them back
byte-identical. External tools run through :mod:`forensics.capture.run`.
"""
