"""osquery query packs as osquery reads them (osquery/config/packs.cpp), validated strictly.

Used by the daemon's schedule (core/schedule.py) and by `packs check`. Where osquery
silently skips a malformed query, we report it (file, query name and problem): a typo in a
pack should not quietly become a query that never runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

PACK_KEYS = {"platform", "version", "shard", "discovery", "queries", "oncall"}
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
    "startup_priority",
}
PLATFORMS = {"all", "any", "linux", "posix", "darwin", "windows", "freebsd", "ubuntu", "centos"}
MAX_INTERVAL = 604_800  # osquery's upper bound for a schedule interval (one week)
DEFAULT_INTERVAL = 3600  # osquery's schedule_default_interval


@dataclass(frozen=True)
class PackQuery:
    name: str
    query: str
    interval: int
    description: str
    snapshot: bool
    removed: bool
    platform: str
    version: str = ""
    shard: int = 0  # 1..100: runs only on hosts whose shard is below it; 0 = everywhere
    denylist: bool = True
    interval_given: bool = True  # False: osquery's schedule_default_interval applies


@dataclass(frozen=True)
class Pack:
    path: str
    discovery: tuple[str, ...]
    queries: tuple[PackQuery, ...]
    platform: str = ""
    version: str = ""
    shard: int = 0


def _problem(path: str, where: str, text: str) -> str:
    return f"{path}: {where}: {text}" if where else f"{path}: {text}"


def _shard(value: object) -> int | None:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        return None
    return value


def parse_pack(path: str, text: str) -> tuple[Pack | None, list[str]]:
    """Validate a pack's JSON shape; returns the pack (None if unusable) and every problem."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, [_problem(path, f"line {exc.lineno}", f"not valid JSON: {exc.msg}")]
    return pack_from_data(path, data)


def pack_from_data(path: str, data: object) -> tuple[Pack | None, list[str]]:
    """A pack from its parsed JSON; `path` names it in problems (a file, or a config key)."""
    problems: list[str] = []
    if not isinstance(data, dict):
        return None, [_problem(path, "", "a pack is a JSON object")]
    for key in sorted(set(data) - PACK_KEYS):
        problems.append(_problem(path, "", f"unknown pack key {key!r}"))
    platform = data.get("platform", "all")
    if not isinstance(platform, str) or not set(platform.split(",")) <= PLATFORMS:
        problems.append(_problem(path, "platform", f"unknown platform {platform!r}"))
    version = data.get("version", "")
    if not isinstance(version, str):
        problems.append(_problem(path, "version", 'must be a string such as "5.0.0"'))
        version = ""
    shard = _shard(data.get("shard", 0))
    if shard is None:
        problems.append(_problem(path, "shard", "must be an integer 0..100"))
        shard = 0
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
        interval = spec.get("interval", DEFAULT_INTERVAL)
        if isinstance(interval, str) and interval.isdigit():
            interval = int(interval)  # osquery accepts intervals written as strings
        if isinstance(interval, bool) or not isinstance(interval, int):
            problems.append(_problem(path, where, f"interval must be an integer, got {interval!r}"))
            continue
        if not 1 <= interval <= MAX_INTERVAL:
            problems.append(
                _problem(path, where, f"interval {interval} is outside 1..{MAX_INTERVAL} seconds")
            )
        for flag in ("snapshot", "removed", "denylist"):
            if flag in spec and not isinstance(spec[flag], bool):
                problems.append(_problem(path, where, f"{flag} must be true or false"))
        qplatform = spec.get("platform", platform)
        if not isinstance(qplatform, str) or not set(qplatform.split(",")) <= PLATFORMS:
            problems.append(_problem(path, where, f"unknown platform {qplatform!r}"))
            qplatform = "linux"
        qversion = spec.get("version", "")
        if not isinstance(qversion, str):
            problems.append(_problem(path, where, "version must be a string"))
            qversion = ""
        qshard = _shard(spec.get("shard", 0))
        if qshard is None:
            problems.append(_problem(path, where, "shard must be an integer 0..100"))
            qshard = 0
        parsed.append(
            PackQuery(
                name=name,
                query=sql.strip(),
                interval=interval,
                description=str(spec.get("description", "")),
                snapshot=bool(spec.get("snapshot", False)),
                removed=bool(spec.get("removed", True)),
                platform=qplatform,
                version=qversion,
                shard=qshard,
                denylist=bool(spec.get("denylist", True)),
                interval_given="interval" in spec,
            )
        )
    pack = Pack(path, tuple(discovery), tuple(parsed), platform, version, shard)
    return pack, problems


def load_pack(path: str) -> tuple[Pack | None, list[str]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"{path}: cannot read: {exc}"]
    return parse_pack(path, text)
