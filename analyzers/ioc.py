"""ioc: URLs, domains, IP addresses, mining pools, wallets and stagers in memory and files."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from forensics.analysis.base import Context
from forensics.analysis.findings import Finding, Record, Severity
from forensics.analysis.helpers import address_class
from forensics.analysis.memscan import Hit

MAX_LOCATIONS = 20
WALLET = re.compile(r"4[0-9AB][1-9A-HJ-NP-Za-km-z]{93}")
URL_IN_TEXT = re.compile(r"[a-z][a-z0-9+]*://[^\s'\"|;<>]+")


@dataclass
class Ioc:
    type: str  # url, domain, ip, pool, wallet, stager
    value: str
    locations: list[dict[str, Any]] = field(default_factory=list)
    count: int = 0

    def add(self, hit: Hit) -> None:
        self.count += 1
        if len(self.locations) < MAX_LOCATIONS:
            self.locations.append(_where(hit))

    def record(self) -> dict[str, Any]:
        return {"type": self.type, "value": self.value, "count": self.count,
                "locations": self.locations}


class IocAnalyzer:
    name = "ioc"
    version = "1.0"
    description = ("URLs, domains, IPs, mining pools, wallets and curl|sh stagers "
                   "in memory and files")

    def applies(self, ctx: Context) -> str | None:
        return None

    def run(self, ctx: Context) -> Iterator[Finding | Record]:
        iocs: dict[tuple[str, str], Ioc] = {}

        def add(kind: str, value: str, hit: Hit) -> None:
            iocs.setdefault((kind, value), Ioc(kind, value)).add(hit)

        for hit in ctx.memory_scan.in_namespace("extract"):
            text = hit.data.decode("latin-1")
            if hit.rule == "url":
                self._url(text, hit, add)
            elif hit.rule == "download_exec":
                add("stager", text, hit)
                for url in URL_IN_TEXT.findall(text):
                    self._url(url, hit, add)
            elif hit.rule == "monero_wallet":
                match = WALLET.search(text)
                if match:
                    add("wallet", match.group(0), hit)
        for ioc in sorted(iocs.values(), key=lambda i: (i.type, i.value)):
            yield Record("ioc", ioc.record())
            finding = self._finding(ioc)
            if finding is not None:
                yield finding

    @staticmethod
    def _url(text: str, hit: Hit, add: Any) -> None:
        parts = urlsplit(text)
        host = parts.hostname or ""
        if parts.scheme.startswith("stratum"):
            add("pool", text, hit)
        else:
            add("url", text, hit)
        if not host:
            return
        try:
            ipaddress.ip_address(host)
            add("ip", host, hit)
        except ValueError:
            if "." in host:
                add("domain", host, hit)

    @staticmethod
    def _finding(ioc: Ioc) -> Finding | None:
        where = _places(ioc)
        first = ioc.locations[0] if ioc.locations else {}
        common: dict[str, Any] = {"pid": first.get("pid"), "path": first.get("path")}
        evidence = {"value": ioc.value, "count": ioc.count, "locations": ioc.locations}
        if ioc.type == "pool":
            return Finding("ioc.mining-pool", Severity.HIGH,
                           f"mining pool {ioc.value} in {where}", evidence=evidence,
                           mitre=("T1496",), **common)
        if ioc.type == "wallet":
            return Finding("ioc.wallet", Severity.HIGH,
                           f"cryptocurrency wallet {ioc.value[:12]}… in {where}",
                           evidence=evidence, mitre=("T1496",), **common)
        if ioc.type == "stager":
            return Finding("ioc.download-exec", Severity.HIGH,
                           f"download-and-execute command {ioc.value!r} in {where}",
                           evidence=evidence, mitre=("T1105", "T1059.004"), **common)
        if ioc.type == "ip" and address_class(ioc.value) == "public":
            return Finding("ioc.public-ip", Severity.LOW,
                           f"public IP address {ioc.value} referenced in {where}",
                           evidence=evidence, **common)
        return None


def _where(hit: Hit) -> dict[str, Any]:
    if hit.pid is not None:
        return {"pid": hit.pid, "address": f"0x{hit.address or 0:x}"}
    return {"path": hit.path, "offset": hit.offset}


def _places(ioc: Ioc) -> str:
    pids = sorted({loc["pid"] for loc in ioc.locations if "pid" in loc})
    paths = sorted({loc["path"] for loc in ioc.locations if "path" in loc})
    parts = ([f"the memory of pid {', '.join(map(str, pids))}"] if pids else []) + paths
    return " and ".join(parts) or "the archive"
