"""An osquery JSON config read as osqueryd reads it: the schedule, packs, options, decorators.

osquery/config/config.cpp turns "schedule" into a pack called "main" and every entry of
"packs" (an object inline, or a path to a pack file) into a pack; osquery/config/packs.cpp
then skips queries for another platform, a newer osquery version or another shard, and
names pack queries "pack" + delimiter + pack + delimiter + query (config.cpp getQueryName).

Unlike osqueryd, which logs and skips what it cannot use, a malformed schedule or pack is
one ConfigError naming the file, pack and query: a typo should not become a query that
silently never runs. Options we do not use are reported as warnings (osquery has hundreds
of flags, most of them about things this daemon does not do).
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import ConfigError
from ..sdk.runtime import SDK_VERSION
from .packs import DEFAULT_INTERVAL, Pack, PackQuery, pack_from_data, parse_pack

MAIN_PACK = "main"
# The options the daemon uses, with osquery's defaults.
OPTION_DEFAULTS: dict[str, object] = {
    "host_identifier": "hostname",  # hostname, uuid, instance, ephemeral, specified
    "specified_identifier": "",
    "schedule_epoch": 0,
    "pack_delimiter": "_",
    "pack_refresh_interval": 3600,  # seconds a pack's discovery answer is kept
    "schedule_default_interval": DEFAULT_INTERVAL,
    "logger_event_type": True,  # one line per added/removed row
    "logger_snapshot_event_type": False,  # snapshot results as one line per run
    "decorations_top_level": False,
    "logger_numerics": False,
    "disable_decorators": False,
}
HOST_IDENTIFIERS = ("hostname", "uuid", "instance", "ephemeral", "specified")
TOP_KEYS = {"schedule", "packs", "options", "decorators"}
# Config keys osqueryd understands that this daemon accepts and does not use.
IGNORED_TOP_KEYS = {
    "file_paths",
    "file_paths_query",
    "exclude_paths",
    "file_accesses",
    "yara",
    "prometheus_targets",
    "views",
    "events",
    "auto_table_construction",
    "feature_vectors",
    "schedule_denylist",
}


@dataclass(frozen=True)
class ScheduledQuery:
    """One query of the schedule, under the name its results are logged with."""

    name: str  # "pack_<pack>_<query>", or the query's own name in "schedule"
    pack: str
    query: PackQuery


@dataclass(frozen=True)
class Decorators:
    load: tuple[str, ...] = ()
    always: tuple[str, ...] = ()
    interval: tuple[tuple[int, tuple[str, ...]], ...] = ()  # (seconds, queries)


@dataclass(frozen=True)
class DaemonConfig:
    source: str
    queries: tuple[ScheduledQuery, ...]
    discovery: dict[str, tuple[str, ...]]  # pack -> its discovery queries
    options: dict[str, object]
    decorators: Decorators = field(default_factory=Decorators)
    warnings: tuple[str, ...] = ()


def strip_comments(text: str) -> str:
    """osquery's config plugins accept whole-line # and // comments in JSON."""
    return "\n".join(
        "" if line.lstrip().startswith(("#", "//")) else line for line in text.splitlines()
    )


def version_at_least(wanted: str, have: str = SDK_VERSION) -> bool:
    """osquery's versionAtLeast: "" or "null" always matches; compares dotted numbers."""
    if not wanted or wanted == "null":
        return True
    numbers = [int(n) for n in re.findall(r"\d+", wanted)[:3]]
    current = [int(n) for n in re.findall(r"\d+", have)[:3]]
    return current >= numbers


def platform_matches(platform: str) -> bool:
    """osquery's checkPlatform for a Linux host (substring tests, as osquery does)."""
    if not platform or platform == "null":
        return True
    return any(word in platform for word in ("any", "all", "linux", "ubuntu", "centos", "posix"))


def machine_shard(hostname: str | None = None) -> int:
    """osquery's getMachineShard: the first byte of the hostname's SHA-1 scaled to 0..100."""
    name = socket.gethostname().strip() if hostname is None else hostname
    return int(hashlib.sha1(name.encode()).hexdigest()[:2], 16) * 100 // 255


def _included(shard: int, platform: str, version: str, host_shard: int) -> bool:
    if shard > 0 and shard < host_shard:
        return False
    return platform_matches(platform) and version_at_least(version)


def _pack(label: str, data: object) -> Pack:
    pack, problems = pack_from_data(label, data)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(problems[0] + more)
    assert pack is not None
    return pack


def _options(source: str, raw: object) -> tuple[dict[str, object], list[str]]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: options: expected an object")
    options = dict(OPTION_DEFAULTS)
    warnings = []
    for name, value in raw.items():
        if name == "log_numerics_as_numbers":
            name = "logger_numerics"  # osquery's alias
        default = OPTION_DEFAULTS.get(name)
        if default is None:
            warnings.append(f"option {name} is not used by the embedded daemon")
            continue
        if isinstance(default, bool):
            if isinstance(value, str) and value.lower() in ("true", "false"):
                value = value.lower() == "true"
            if not isinstance(value, bool):
                raise ConfigError(f"{source}: options.{name}: expected true or false")
        elif isinstance(default, int):
            if isinstance(value, str) and value.isdigit():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{source}: options.{name}: expected a non-negative integer")
        elif not isinstance(value, str):
            raise ConfigError(f"{source}: options.{name}: expected a string")
        options[name] = value
    if options["host_identifier"] not in HOST_IDENTIFIERS:
        raise ConfigError(
            f"{source}: options.host_identifier: one of {', '.join(HOST_IDENTIFIERS)}"
        )
    if options["host_identifier"] == "specified" and not options["specified_identifier"]:
        raise ConfigError(
            f"{source}: options.host_identifier is specified: set specified_identifier"
        )
    if options["logger_numerics"]:
        warnings.append("option logger_numerics: values are logged as strings (numerics false)")
        options["logger_numerics"] = False
    return options, warnings


def _decorators(source: str, raw: object) -> Decorators:
    if raw is None:
        return Decorators()
    where = f"{source}: decorators"
    if not isinstance(raw, dict) or set(raw) - {"load", "always", "interval"}:
        raise ConfigError(f"{where}: an object with load, always and interval")

    def queries(value: object, key: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(q, str) for q in value):
            raise ConfigError(f"{where}.{key}: a list of SQL strings")
        return tuple(value)

    interval = raw.get("interval", {})
    if not isinstance(interval, dict):
        raise ConfigError(f"{where}.interval: an object of seconds -> queries")
    timed = []
    for seconds, listed in interval.items():
        if not str(seconds).isdigit() or int(seconds) < 60 or int(seconds) % 60:
            raise ConfigError(f"{where}.interval: {seconds!r} is not a multiple of 60 seconds")
        timed.append((int(seconds), queries(listed, f"interval.{seconds}")))
    return Decorators(
        queries(raw.get("load", []), "load"), queries(raw.get("always", []), "always"), tuple(timed)
    )


def parse_daemon_config(text: str, source: str, host_shard: int | None = None) -> DaemonConfig:
    """The schedule of an osquery JSON config; ConfigError naming what is wrong."""
    try:
        data = json.loads(strip_comments(text))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: line {exc.lineno}: not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: an osquery config is a JSON object")
    unknown = sorted(set(data) - TOP_KEYS - IGNORED_TOP_KEYS)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key {unknown[0]!r} (known: {', '.join(sorted(TOP_KEYS))})"
        )
    options, warnings = _options(source, data.get("options"))
    warnings += [
        f"{key} is not used by the embedded daemon" for key in sorted(set(data) & IGNORED_TOP_KEYS)
    ]
    default_interval = int(options["schedule_default_interval"])  # type: ignore[call-overload]
    packs: list[tuple[str, Pack]] = []
    schedule = data.get("schedule")
    if schedule is not None:
        if not isinstance(schedule, dict):
            raise ConfigError(f"{source}: schedule: expected an object of named queries")
        if schedule:
            packs.append((MAIN_PACK, _pack(f"{source}: schedule", {"queries": schedule})))
    raw_packs = data.get("packs", {})
    if not isinstance(raw_packs, dict):
        raise ConfigError(f"{source}: packs: expected an object of pack name -> pack or path")
    for name, value in raw_packs.items():
        if isinstance(value, str):
            path = Path(value)
            try:
                pack_text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or exc
                raise ConfigError(
                    f"{source}: packs.{name}: cannot read {value}: {reason}"
                ) from None
            pack, problems = parse_pack(f"{source}: packs.{name} ({value})", pack_text)
            if problems:
                raise ConfigError(problems[0])
            assert pack is not None
        else:
            pack = _pack(f"{source}: packs.{name}", value)
        packs.append((str(name), pack))
    shard = machine_shard() if host_shard is None else host_shard
    delimiter = str(options["pack_delimiter"])
    scheduled: list[ScheduledQuery] = []
    discovery: dict[str, tuple[str, ...]] = {}
    for pack_name, pack in packs:
        if not _included(pack.shard, pack.platform, pack.version, shard):
            warnings.append(
                f"pack {pack_name} does not apply to this host (platform/version/shard)"
            )
            continue
        discovery[pack_name] = pack.discovery
        for q in sorted(pack.queries, key=lambda q: q.name):
            if not _included(q.shard, q.platform, q.version, shard):
                continue
            if not q.interval_given:
                q = replace(q, interval=default_interval)
            full = (
                q.name
                if pack_name == MAIN_PACK
                else f"pack{delimiter}{pack_name}{delimiter}{q.name}"
            )
            scheduled.append(ScheduledQuery(full, pack_name, q))
    names = [q.name for q in scheduled]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise ConfigError(f"{source}: two scheduled queries are both named {duplicate!r}")
    return DaemonConfig(
        source=source,
        queries=tuple(scheduled),
        discovery=discovery,
        options=options,
        decorators=_decorators(source, data.get("decorators")),
        warnings=tuple(warnings),
    )


def load_daemon_config(path: str, host_shard: int | None = None) -> DaemonConfig:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise ConfigError(f"cannot read osquery config {path}: {reason}") from None
    return parse_daemon_config(text, path, host_shard)
