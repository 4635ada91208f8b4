"""osquery query packs: validation, and their Fleet YAML form.

The JSON packs in packs/ are the single source; the Fleet YAML beside them is generated from
them (`osquery-audit-ext packs fleet`) so the two never drift.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

PACK_KEYS = {"platform", "version", "shard", "discovery", "queries"}
QUERY_KEYS = {
    "query",
    "interval",
    "description",
    "value",
    "snapshot",
    "removed",
    "platform",
    "version",
    "shard",
    "denylist",
    "blacklist",
}
PLATFORMS = {"all", "any", "linux", "posix", "darwin", "windows", "freebsd"}
MAX_INTERVAL = 604_800  # osquery's upper bound for a schedule interval (one week)


@dataclass(frozen=True)
class PackQuery:
    name: str
    query: str
    interval: int
    description: str
    snapshot: bool
    removed: bool
    platform: str


@dataclass(frozen=True)
class Pack:
    path: str
    discovery: tuple[str, ...]
    queries: tuple[PackQuery, ...]


def _problem(path: str, where: str, text: str) -> str:
    return f"{path}: {where}: {text}" if where else f"{path}: {text}"


def parse_pack(path: str, text: str) -> tuple[Pack | None, list[str]]:
    """Validate a pack's JSON shape; returns the pack (None if unusable) and every problem."""
    problems: list[str] = []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, [_problem(path, f"line {exc.lineno}", f"not valid JSON: {exc.msg}")]
    if not isinstance(data, dict):
        return None, [_problem(path, "", "a pack is a JSON object")]
    for key in sorted(set(data) - PACK_KEYS):
        problems.append(_problem(path, "", f"unknown pack key {key!r}"))
    platform = data.get("platform", "all")
    if not isinstance(platform, str) or not set(platform.split(",")) <= PLATFORMS:
        problems.append(_problem(path, "platform", f"unknown platform {platform!r}"))
    discovery = data.get("discovery", [])
    if not isinstance(discovery, list) or not all(isinstance(q, str) for q in discovery):
        problems.append(_problem(path, "discovery", "must be a list of SQL strings"))
        discovery = []
    queries = data.get("queries")
    if not isinstance(queries, dict) or not queries:
        problems.append(_problem(path, "queries", "must be a non-empty object of named queries"))
        return None, problems
    parsed = []
    for name, spec in queries.items():
        where = f"queries.{name}"
        if not isinstance(spec, dict):
            problems.append(_problem(path, where, "must be an object"))
            continue
        for key in sorted(set(spec) - QUERY_KEYS):
            problems.append(_problem(path, where, f"unknown key {key!r}"))
        sql = spec.get("query")
        if not isinstance(sql, str) or not sql.strip():
            problems.append(_problem(path, where, "needs a non-empty 'query'"))
            continue
        interval = spec.get("interval", 3600)
        if isinstance(interval, str) and interval.isdigit():
            interval = int(interval)  # osquery accepts intervals written as strings
        if isinstance(interval, bool) or not isinstance(interval, int):
            problems.append(_problem(path, where, f"interval must be an integer, got {interval!r}"))
            continue
        if not 1 <= interval <= MAX_INTERVAL:
            problems.append(
                _problem(path, where, f"interval {interval} is outside 1..{MAX_INTERVAL} seconds")
            )
        for flag in ("snapshot", "removed"):
            if flag in spec and not isinstance(spec[flag], bool):
                problems.append(_problem(path, where, f"{flag} must be true or false"))
        qplatform = spec.get("platform", platform)
        if not isinstance(qplatform, str) or not set(qplatform.split(",")) <= PLATFORMS:
            problems.append(_problem(path, where, f"unknown platform {qplatform!r}"))
            qplatform = "linux"
        parsed.append(
            PackQuery(
                name=name,
                query=sql.strip(),
                interval=interval,
                description=str(spec.get("description", "")),
                snapshot=bool(spec.get("snapshot", False)),
                removed=bool(spec.get("removed", True)),
                platform=qplatform,
            )
        )
    return Pack(path, tuple(discovery), tuple(parsed)), problems


def load_pack(path: str) -> tuple[Pack | None, list[str]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"{path}: cannot read: {exc}"]
    return parse_pack(path, text)


def _yaml_str(value: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(value, ensure_ascii=False)


def fleet_yaml(packs: list[Pack]) -> str:
    """Fleet's queries YAML (a `queries:` list, as in GitOps default.yml or team files)."""
    lines = [
        "# Generated from packs/*.conf by `osquery-audit-ext packs fleet`: edit the packs, not this.",
        "queries:",
    ]
    for pack in packs:
        for q in pack.queries:
            if q.snapshot:
                logging = "snapshot"
            elif q.removed:
                logging = "differential"
            else:
                logging = "differential_ignore_removals"
            lines += [
                f"  - name: {_yaml_str(q.name)}",
                f"    query: {_yaml_str(q.query)}",
                f"    description: {_yaml_str(q.description)}",
                f"    platform: {_yaml_str('linux' if q.platform in ('linux', 'posix') else q.platform)}",
                f"    interval: {q.interval}",
                f"    logging: {logging}",
                "    observer_can_run: true",
                "    automations_enabled: true",
            ]
    return "\n".join(lines) + "\n"
