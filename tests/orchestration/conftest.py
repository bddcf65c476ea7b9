"""The registry fixtures of tests/capture (session registries, the private home)."""

from tests.capture.conftest import (  # noqa: F401  (pytest finds fixtures by name)
    archive_copy,
    htpasswd_registry,
    own_registry,
    private_home,
    registry,
    tls_registry,
    token_registry,
)
