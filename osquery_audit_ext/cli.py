"""The one entry point: `osquery-audit-ext [COMMAND] ...`.

Without a command (as osquery launches it: `--socket S --timeout T --interval I`) it runs
as an osquery extension. Each command lives in `osquery_audit_ext/commands/NAME.py` and
exposes `configure(parser)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import AuditExtError

COMMANDS = {
    "status": "print or change the kernel's audit status, like auditctl -s",
    "rules": "list, add, delete or load audit rules in auditctl syntax",
    "shell": "interactive SQL over the audit tables (embedded osquery-compatible core)",
    "daemon": "run the embedded core as a service with the audit extension loaded",
    "query": "run one SQL query on an osquery extension manager socket",
    "packs": "check osquery query packs against the audit tables",
    "extension": "run as an osquery extension (what osquery's autoload starts)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="osquery-audit-ext",
        description="Linux audit tables for osquery, read from the audit netlink.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", metavar="FILE", help="configuration file (TOML)")
        module = importlib.import_module(f"osquery_audit_ext.commands.{name}")
        module.configure(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--config"] and len(argv) > 2 and argv[2] in COMMANDS:
        argv = [argv[2], "--config", argv[1], *argv[3:]]  # `--config FILE COMMAND ...`
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        # Launched by osquery: `--socket S --timeout T --interval I [--verbose] [unknown...]`.
        argv = ["extension", *argv]
    parser = build_parser()
    if argv[0] == "extension":
        args, _unknown = parser.parse_known_args(argv)  # osquery may add flags we do not know
    else:
        args = parser.parse_args(argv)
    try:
        return int(args._module.run(args) or 0)
    except AuditExtError as exc:
        print(f"osquery-audit-ext: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
