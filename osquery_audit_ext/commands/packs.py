"""`packs check FILE...` validates osquery packs and runs every query against our tables;
`packs fleet FILE...` prints them as Fleet queries YAML."""

from __future__ import annotations

import argparse
import sys

from ..app.packs import FLEET_KEYS, Pack, fleet_yaml, load_pack


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="packs_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="validate packs and run their queries")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument(
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,  # keep a --config given before `check`
        help="the extension's configuration file (TOML)",
    )
    check.add_argument(
        "--no-run",
        action="store_true",
        help="check the JSON shape only, do not run the queries against the embedded core",
    )
    fleet = sub.add_parser("fleet", help="print the packs' queries as Fleet GitOps YAML")
    fleet.add_argument("files", nargs="+", metavar="FILE")
    fleet.add_argument(
        "--key",
        choices=FLEET_KEYS,
        default=FLEET_KEYS[0],
        help="the list's key: reports (Fleet 4.82 and later, default) or queries (older Fleet)",
    )


def _load_all(files: list[str]) -> tuple[list[Pack], list[str]]:
    packs, problems = [], []
    for path in files:
        pack, found = load_pack(path)
        problems += found
        if pack is not None:
            packs.append(pack)
    return packs, problems


def run(args: argparse.Namespace) -> int:
    packs, problems = _load_all(args.files)
    if args.packs_command == "fleet":
        if problems:
            print("\n".join(problems), file=sys.stderr)
            return 1
        sys.stdout.write(fleet_yaml(packs, args.key))
        return 0
    warnings: list[str] = []
    if not problems and not args.no_run:
        from ..app.pack_runner import run_pack_queries

        found, warnings = run_pack_queries(packs, args.config)
        problems += found
    for problem in problems:
        print(problem, file=sys.stderr)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    total = sum(len(p.queries) + len(p.discovery) for p in packs)
    verdict = "FAILED" if problems else "ok"
    print(
        f"packs check: {len(args.files)} file(s), {total} queries, {len(problems)} problem(s), "
        f"{len(warnings)} warning(s): {verdict}"
    )
    return 1 if problems else 0
