"""The receiver's policy: what a Falco alert triggers, and why.

A YAML file (``deploy/policy/default-policy.yaml`` is the packaged default)::

    rules:                      # first match wins
      - name: high-value-rules
        match:                  # every condition given must hold
          rules: ["Drop and execute new binary in container", "Terminal shell*"]
          priority: ">= Critical"         # >=, >, ==, <=, <; a bare name means >=
          sources: [syscall]
          tags: {any: [mitre_execution], all: [container], none: [host]}
          namespaces: {allow: ["prod-*"], deny: [kube-system]}
          fields: {"container.image.repository": ["docker.io/*"], "proc.name": null}
        action: capture         # capture | notify-only | ignore
        analyze: true           # capture only: analyse and report (default true)
    default_action: ignore
    guards: {dedup_window: 5m, cooldown: 15m, rate: 10/min, burst: 10, max_queued: 50,
             max_per_node: 1, max_cluster: 4}      # see forensics.receiver.guards

Before any rule, alerts that name no container csi may capture (Falco's
``internal`` source, host processes, ``null`` container fields, sources such as
``k8saudit``) are ignored with that reason: no rule can make csi freeze the host.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase, translate
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from forensics.errors import CsiError
from forensics.orchestration.request import Backend, Target
from forensics.receiver.falco import SEVERITY, Alert, FieldValue, InvalidAlert, canonical_priority
from forensics.receiver.guards import GuardConfig, parse_guards
from forensics.receiver.targets import Unresolved, resolve_target, target_dict
from forensics.status import ExitStatus

Action = Literal["capture", "notify-only", "ignore"]
ACTIONS: tuple[Action, ...] = ("capture", "notify-only", "ignore")
_OPS = {">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "==": lambda a, b: a == b,
        "<=": lambda a, b: a <= b, "<": lambda a, b: a < b}
_PRIORITY = re.compile(r"^\s*(>=|<=|==|>|<)?\s*([A-Za-z]+)\s*$")
_GLOB_CHARS = frozenset("*?[")
_MATCH_KEYS = {"rules", "priority", "sources", "tags", "namespaces", "fields"}
_RULE_KEYS = {"name", "description", "match", "action", "analyze"}
_TOP_KEYS = {"version", "rules", "default_action", "guards"}


class PolicyError(CsiError):
    """The policy file cannot be used as written."""

    exit_code = ExitStatus.USAGE


@dataclass(frozen=True)
class Match:
    rules: tuple[str, ...] = ()
    priority: tuple[str, int] | None = None  # (operator, severity rank)
    sources: tuple[str, ...] = ()
    tags_any: tuple[str, ...] = ()
    tags_all: tuple[str, ...] = ()
    tags_none: tuple[str, ...] = ()
    namespaces_allow: tuple[str, ...] = ()
    namespaces_deny: tuple[str, ...] = ()
    fields: tuple[tuple[str, tuple[FieldValue, ...]], ...] = ()

    @cached_property
    def _globs(self) -> dict[str, Globs]:
        return {name: Globs(getattr(self, name)) for name in (
            "rules", "sources", "namespaces_allow", "namespaces_deny")}

    def failure(self, alert: Alert) -> str | None:
        """Why ``alert`` does not match (the first unmet condition), or None."""
        globs = self._globs
        if self.rules and not globs["rules"].match(alert.rule):
            return "rule name not listed"
        if self.priority and not _OPS[self.priority[0]](alert.severity, self.priority[1]):
            return f"priority {alert.priority} not {self.priority[0]} " \
                   f"{_name_of(self.priority[1])}"
        if self.sources and not globs["sources"].match(alert.source):
            return f"source {alert.source} not listed"
        tags = set(alert.tags)
        if self.tags_any and not tags & set(self.tags_any):
            return "none of the tags listed"
        if self.tags_all and not set(self.tags_all) <= tags:
            return "not all the tags listed"
        if self.tags_none and tags & set(self.tags_none):
            return "an excluded tag"
        namespace = alert.text("k8s.ns.name")
        if self.namespaces_allow and not globs["namespaces_allow"].match(namespace):
            return f"namespace {namespace or 'null'} not allowed"
        if self.namespaces_deny and namespace and globs["namespaces_deny"].match(namespace):
            return f"namespace {namespace} denied"
        for name, wanted in self.fields:
            if not any(_field_matches(alert.field(name), w) for w in wanted):
                return f"field {name} does not match"
        return None


@dataclass(frozen=True)
class PolicyRule:
    name: str
    match: Match
    action: Action
    analyze: bool = True
    description: str = ""


@dataclass(frozen=True)
class Decision:
    """What an alert triggers: the action, the rule that decided it, and why."""

    action: Action
    rule: str  # the policy rule's name; "builtin:<kind>" or "default" otherwise
    reasons: tuple[str, ...]
    target: Target | None = None
    analyze: bool = True
    unresolved: str = ""  # Unresolved.kind when the alert names no capturable container

    @property
    def outcome(self) -> str:
        """The journal's outcome when no guard rail applies."""
        if self.unresolved:
            return self.unresolved
        return {"capture": "capture", "notify-only": "notified", "ignore": "ignored"}[self.action]

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "rule": self.rule, "reasons": list(self.reasons),
                "target": None if self.target is None else target_dict(self.target),
                "analyze": self.analyze, "unresolved": self.unresolved}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        target = data.get("target")
        return cls(action=data["action"], rule=data["rule"], reasons=tuple(data["reasons"]),
                   target=Target(**target) if target else None,
                   analyze=bool(data.get("analyze", True)),
                   unresolved=str(data.get("unresolved", "")))


@dataclass(frozen=True)
class Policy:
    rules: tuple[PolicyRule, ...]
    default_action: Action = "ignore"
    guards: GuardConfig = field(default_factory=GuardConfig)
    path: str = ""

    def decide(self, alert: Alert, backend: Backend = "kubernetes") -> Decision:
        """The decision for one alert (stateless: the guard rails come later)."""
        target = resolve_target(alert, backend)
        if isinstance(target, Unresolved):
            return Decision("ignore", f"builtin:{target.kind}", (target.reason,),
                            unresolved=target.kind)
        misses: list[str] = []
        for rule in self.rules:
            why_not = rule.match.failure(alert)
            if why_not is None:
                reason = f"policy rule {rule.name!r} matched Falco rule {alert.rule!r} " \
                         f"({alert.priority}, source {alert.source})"
                return Decision(rule.action, rule.name, (reason,), target,
                                analyze=rule.analyze)
            misses.append(f"{rule.name}: {why_not}")
        reason = f"no policy rule matched ({'; '.join(misses) or 'the policy has no rules'})"
        return Decision(self.default_action, "default", (reason,), target)


@lru_cache(maxsize=1024)
def decision_json(decision: Decision) -> str:
    """The journal's JSON of a decision (cached: a storm repeats the same few)."""
    return json.dumps(decision.to_dict())


def _name_of(rank: int) -> str:
    return next(name for name, r in SEVERITY.items() if r == rank)


class Globs:
    """Shell-style patterns (``*``, ``?``, ``[…]``), case-sensitive, matched as one regex."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        self.exact = frozenset(p for p in patterns if not _GLOB_CHARS.intersection(p))
        wild = [translate(p) for p in patterns if _GLOB_CHARS.intersection(p)]
        self.regex = re.compile("|".join(wild)) if wild else None

    def match(self, value: str) -> bool:
        return value in self.exact or bool(self.regex and self.regex.match(value))


def _field_matches(value: FieldValue, wanted: FieldValue) -> bool:
    if wanted is None:
        return value is None or value == "<NA>"
    if value is None:
        return False
    if isinstance(wanted, str):
        return fnmatchcase(str(value), wanted)
    return value == wanted


# ------------------------------------------------------------------ loading

def load_policy(path: str | Path | None = None) -> Policy:
    """Read a policy file; ``None`` reads the packaged default policy."""
    import yaml

    if path is None:
        text = resources.files("forensics.receiver").joinpath("default-policy.yaml").read_text()
        where = "default-policy.yaml (packaged)"
    else:
        where = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyError(f"{where}: cannot read the policy", why=exc.strerror or str(exc)
                              ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{where}: not valid YAML", why=" ".join(str(exc).split())) from None
    return parse_policy(data, where)


def parse_policy(data: object, where: str = "policy") -> Policy:
    if isinstance(data, dict):  # x-… keys hold YAML anchors and notes, like compose files
        data = {k: v for k, v in data.items() if not str(k).startswith("x-")}
    doc = _mapping(data, where, _TOP_KEYS)
    if doc.get("version", 1) != 1:
        raise PolicyError(f"{where}: version {doc['version']!r} is not supported (only 1)")
    raw_rules = doc.get("rules") or []
    if not isinstance(raw_rules, list):
        raise PolicyError(f"{where}: rules must be a list")
    rules = tuple(_rule(r, f"{where}: rules[{i}]") for i, r in enumerate(raw_rules))
    names = [r.name for r in rules]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise PolicyError(f"{where}: rule names must be unique: {', '.join(dupes)}")
    try:
        guards = parse_guards(doc.get("guards") or {})
    except ValueError as exc:
        raise PolicyError(f"{where}: guards: {exc}") from None
    return Policy(rules=rules, default_action=_action(doc.get("default_action", "ignore"),
                                                       f"{where}: default_action"),
                  guards=guards, path=where)


def _rule(data: object, where: str) -> PolicyRule:
    doc = _mapping(data, where, _RULE_KEYS)
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip():
        raise PolicyError(f"{where}: name is required")
    where = f"{where} ({name})"
    if not isinstance(doc.get("analyze", True), bool):
        raise PolicyError(f"{where}: analyze must be true or false")
    return PolicyRule(name=name, match=_match(doc.get("match") or {}, f"{where}.match"),
                      action=_action(doc.get("action"), f"{where}.action"),
                      analyze=doc.get("analyze", True),
                      description=str(doc.get("description", "")))


def _match(data: object, where: str) -> Match:
    doc = _mapping(data, where, _MATCH_KEYS)
    tags = doc.get("tags") or {}
    if isinstance(tags, list):
        tags = {"any": tags}
    tags = _mapping(tags, f"{where}.tags", {"any", "all", "none"})
    namespaces = _mapping(doc.get("namespaces") or {}, f"{where}.namespaces", {"allow", "deny"})
    fields = _mapping(doc.get("fields") or {}, f"{where}.fields", None)
    return Match(
        rules=_strings(doc.get("rules"), f"{where}.rules"),
        priority=_priority(doc["priority"], f"{where}.priority") if "priority" in doc else None,
        sources=_strings(doc.get("sources"), f"{where}.sources"),
        tags_any=_strings(tags.get("any"), f"{where}.tags.any"),
        tags_all=_strings(tags.get("all"), f"{where}.tags.all"),
        tags_none=_strings(tags.get("none"), f"{where}.tags.none"),
        namespaces_allow=_strings(namespaces.get("allow"), f"{where}.namespaces.allow"),
        namespaces_deny=_strings(namespaces.get("deny"), f"{where}.namespaces.deny"),
        fields=tuple((str(k), _field_values(v, f"{where}.fields[{k}]"))
                     for k, v in fields.items()),
    )


def _priority(value: object, where: str) -> tuple[str, int]:
    match = _PRIORITY.match(value) if isinstance(value, str) else None
    if match is None:
        raise PolicyError(f"{where}: {value!r} is not a priority threshold like '>= Critical'")
    try:
        name = canonical_priority(match.group(2))
    except InvalidAlert as exc:
        raise PolicyError(f"{where}: {exc}") from None
    return match.group(1) or ">=", SEVERITY[name]


def _action(value: object, where: str) -> Action:
    for action in ACTIONS:
        if value == action:
            return action
    raise PolicyError(f"{where}: {value!r} is not an action ({', '.join(ACTIONS)})")


def _mapping(data: object, where: str, keys: set[str] | None) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise PolicyError(f"{where}: must be a mapping, not {type(data).__name__}")
    unknown = sorted(str(k) for k in data if keys is not None and k not in keys)
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(keys or ()))})")
    return data


def _strings(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{where}: must be a list of strings")
    return tuple(value)


def _field_values(value: object, where: str) -> tuple[FieldValue, ...]:
    values = value if isinstance(value, list) else [value]
    for item in values:
        if item is not None and not isinstance(item, str | int | float | bool):
            raise PolicyError(f"{where}: values must be strings, numbers or null")
    return tuple(values)
