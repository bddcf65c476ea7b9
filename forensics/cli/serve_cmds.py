"""``csi serve`` (the Falco receiver) and ``csi policy test``."""

from __future__ import annotations

from typing import Any

import click

from forensics.cli.output import dump, output_option

LOG_FORMAT = "%(asctime)s csi serve %(levelname)s %(message)s"


@click.command()
@click.option("--config", "config_file", metavar="FILE",
              help="csi.yaml with a 'serve:' section (also CSI_CONFIG; default: "
                   "$XDG_CONFIG_HOME/csi/config.yaml, ~/.config/csi/config.yaml, if there).")
@click.option("--listen", metavar="HOST:PORT",
              help="Address to listen on (CSI_LISTEN; default 127.0.0.1:2802).")
@click.option("--executor", type=click.Choice(["local", "argo"]),
              help="Who runs captures (CSI_EXECUTOR; default local).")
@click.option("--backend", type=click.Choice(["kubernetes", "podman"]),
              help="Where alerted containers run (CSI_BACKEND; default kubernetes).")
@click.option("--token-file", metavar="FILE",
              help="Bearer token file: POSTs need 'Authorization: Bearer <token>' "
                   "(CSI_TOKEN_FILE).")
@click.option("--hmac-secret-file", metavar="FILE",
              help="HMAC key file: POSTs may carry 'X-CSI-Signature: sha256=<hex>' "
                   "(CSI_HMAC_SECRET_FILE).")
@click.option("--tls-cert", metavar="FILE", help="Server certificate (CSI_TLS_CERT).")
@click.option("--tls-key", metavar="FILE", help="Server key (CSI_TLS_KEY).")
@click.option("--tls-client-ca", metavar="FILE",
              help="Require client certificates signed by this CA: mTLS for Falco's "
                   "http_output (CSI_TLS_CLIENT_CA).")
@click.option("--policy", metavar="FILE",
              help="Policy YAML (CSI_POLICY; default: the packaged default policy).")
@click.option("--journal-sync", type=click.Choice(["normal", "full"]),
              help="normal: survives kill -9; full: fsync per alert, survives power loss "
                   "(CSI_JOURNAL_SYNC; default normal).")
@click.option("--log-format", type=click.Choice(["text", "json"]),
              help="Log lines as text or as one JSON object each (CSI_LOG_FORMAT; "
                   "default text).")
def serve(config_file: str | None, **flags: Any) -> None:
    """Receive Falco alerts over HTTP and capture the containers they name.

    Point Falco's http_output (json_output: true) or falcosidekick's webhook
    output at POST /falco. Every setting can also come from the config file
    and from CSI_* environment variables (flags > environment > file >
    defaults); without a token, an HMAC key or a client CA the receiver
    refuses to start unless allow_unauthenticated is set.
    """
    import asyncio
    import logging

    from forensics.receiver.config import load_serve_config
    from forensics.receiver.logs import setup_logging
    from forensics.receiver.server import build_service, serve_forever

    config = load_serve_config(config_file, flags)
    setup_logging(config.log_level, config.log_format, LOG_FORMAT)  # one line a record
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING if not config.access_log
                                                 else logging.INFO)
    service = build_service(config)
    asyncio.run(serve_forever(service))


@click.group()
def policy() -> None:
    """The receiver's policy: what a Falco alert triggers."""


@policy.command("test")
@click.argument("alert_file", metavar="ALERT.json", type=click.File("rb"))
@click.option("--policy", "policy_file", metavar="FILE", envvar="CSI_POLICY",
              help="Policy YAML (default: the packaged default policy).")
@click.option("--backend", type=click.Choice(["kubernetes", "podman"]), default="kubernetes",
              show_default=True, envvar="CSI_BACKEND")
@output_option(dest="output")
def policy_test(alert_file: Any, policy_file: str | None, backend: str, output: str) -> None:
    """Print what ALERT.json (a Falco alert, '-' for stdin) would trigger, and why.

    The guard rails (dedup, cooldown, concurrency, rate) depend on live state
    and are not applied here.
    """
    from forensics.receiver.falco import decode_alert
    from forensics.receiver.policy import load_policy

    loaded = load_policy(policy_file)
    alert = decode_alert(alert_file.read())
    decision = loaded.decide(alert, "podman" if backend == "podman" else "kubernetes")
    if output != "text":
        dump({"alert_id": alert.id, "fingerprint": alert.fingerprint,
                   "policy": loaded.path, **decision.to_dict()}, output)
        return
    g = loaded.guards
    rows = [("decision", decision.action), ("policy rule", decision.rule)]
    if decision.target is not None:
        target = decision.target
        where = f" on node {target.node}" if target.node else ""
        ident = f" (container id {target.container_id})" if target.container_id else ""
        shown = target.key() if target.container else \
            f"{target.key().rstrip('/')}, container name unknown"
        rows.append(("target", f"{target.backend} {shown}{where}{ident}"))
    rows += [("why", reason) for reason in decision.reasons]
    rows += [("alert", f"{alert.rule!r} {alert.priority} source {alert.source} "
                       f"host {alert.hostname or '?'} id {alert.id}"),
             ("policy", loaded.path),
             ("guards", f"not applied here (dedup {g.dedup_window:g}s, cooldown "
                        f"{g.cooldown:g}s, {g.max_per_node}/node, {g.max_cluster} in all, "
                        f"{g.rate_per_minute:g}/min)")]
    for name, value in rows:
        click.echo(f"{name + ':':<13}{value}")
