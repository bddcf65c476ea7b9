"""The Falco receiver: ``csi serve``.

Falco's ``http_output`` or falcosidekick's webhook POSTs an alert; the receiver
validates it (:mod:`.falco`), decides what it should trigger (:mod:`.policy`),
journals it durably (:mod:`.journal`) and answers ``202`` before any capture
work begins. A background task applies the guard rails against checkpoint
storms (:mod:`.guards`) and hands capture requests to an executor
(:mod:`.executor`). :mod:`.app` holds the thin aiohttp handlers, :mod:`.auth`
the bearer token, HMAC signature and mTLS checks, :mod:`.metrics` the
Prometheus metrics and :mod:`.config` the ``csi serve`` settings.
"""
