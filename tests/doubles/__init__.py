"""In-process test doubles for the Kubernetes API server and the kubelet.

Neither can run on this machine (no kubelet, no cluster: see the README's
"Setup and tests"), so csi's Kubernetes clients are tested against these
stand-ins. They are **doubles**, not Kubernetes: small aiohttp apps served on
127.0.0.1 over TLS by a background
thread, speaking the same HTTP and JSON as the real servers (Status objects,
plain-text kubelet errors, exact messages), with the same authentication
and RBAC decisions modelled by tables. The kubelet double takes REAL CRIU
checkpoints through podman when this machine can (see
:mod:`tests.doubles.kubelet`).

Start them with :func:`tests.doubles.fixtures.running_stack` (a context
manager) or the pytest fixtures of ``tests/doubles/conftest.py``.
"""
