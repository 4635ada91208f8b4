"""`rules`: list, add, delete or load kernel audit rules in auditctl syntax.

    rules list [-k KEY]                 like `auditctl -l [-k KEY]`
    rules add RULE...                   each RULE one quoted rule: "-w /etc/passwd -p wa -k identity"
    rules delete RULE...                the rule as added (-a/-A/-w) or as auditctl deletes it (-d/-W)
    rules load [--check] FILE           an audit.rules file: one rule per line, # comments
    rules suggest [OPTIONS] -- CMD...   rules for what CMD does, from a run under `strace -f`
    rules suggest [OPTIONS] --from LOG  the same from a saved `strace -f` log

Every rule is parsed before the kernel is asked anything, so a bad rule changes nothing. If the
kernel refuses a rule part-way, the changes already made by the same command are undone.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..audit.control import AuditControl
from ..audit.rule.codec import decode_rule, encode_rule
from ..audit.rule.fields import KEY_SEPARATOR
from ..audit.rule.format import format_rule
from ..audit.rule.model import Rule
from ..audit.rule.parse import RuleCommand, parse_rule, split_rules_file_line
from ..audit.rule.suggest import EXCLUDED_DIRS, Options, propose, render
from ..audit.strace_log import StraceLog, read_strace_log
from ..audit.syscalls import native_machine
from ..errors import AuditExtError, ConfigError, RuleSyntaxError

# auditctl options that are not rules (settings, listing, flags): refused by `rules load`.
CONTROL_OPTIONS = {
    "-D": "deletes every rule",
    "-b": "sets backlog_limit",
    "-e": "sets enabled",
    "-f": "sets failure",
    "-r": "sets rate_limit",
    "--backlog_wait_time": "sets backlog_wait_time",
    "--loginuid-immutable": "makes loginuids immutable",
    "--reset-lost": "resets the lost counter",
    "--reset_backlog_wait_time_actual": "resets backlog_wait_time_actual",
    "-i": "ignores errors",
    "-c": "continues through errors",
    "-R": "reads another file",
    "-s": "prints the status",
    "-l": "lists rules",
    "-m": "sends a user message",
    "-q": "makes a mount equivalent",
    "-t": "trims subtrees",
    "--signal": "signals auditd",
    "-v": "prints the version",
    "-h": "prints help",
}


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="rules_action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="print the kernel's rules as `auditctl -l` does")
    listing.add_argument(
        "-k", "--key", help="only rules with a key containing KEY (as `auditctl -l -k KEY`)"
    )
    add = actions.add_parser("add", help="add rules (-a, -A, -w)")
    add.add_argument(
        "rules",
        nargs="+",
        metavar="RULE",
        help='one rule per argument, e.g. "-w /etc/passwd -p wa"',
    )
    delete = actions.add_parser("delete", help="delete rules (given as added, or as -d/-W)")
    delete.add_argument("rules", nargs="+", metavar="RULE", help="one rule per argument")
    load = actions.add_parser("load", help="apply an audit.rules file (-a, -A, -d, -w, -W lines)")
    load.add_argument("file", metavar="FILE", type=Path, help="one rule per line, # comments")
    load.add_argument(
        "--check",
        action="store_true",
        help="only parse the file (no kernel, no root): report bad lines, change nothing",
    )
    suggest = actions.add_parser(
        "suggest",
        help="print rules for what a program does: run it under `strace -f` (or read a log)",
        description="Run CMD under `strace -f` (or read a saved log) and print a rules file: "
        "the profile of its syscalls, then rules for the security-relevant ones it used, each "
        "with the records it would have produced and records/s.",
    )
    suggest.add_argument(
        "--from",
        dest="log",
        metavar="FILE",
        type=Path,
        help="a saved `strace -f` log instead of running CMD (best: strace -f -n -ttt -y -o FILE)",
    )
    suggest.add_argument("-k", "--key", default="suggested", help="key prefix (default: suggested)")
    suggest.add_argument(
        "--exe",
        nargs="?",
        const="",
        metavar="PATH",
        help="scope every rule with -F exe=PATH (without PATH: the program CMD ran)",
    )
    suggest.add_argument(
        "--auid", metavar="UID", help="scope every rule with -F auid=UID (or user)"
    )
    suggest.add_argument(
        "--budget",
        type=float,
        default=100.0,
        metavar="N",
        help="warn about rules above N records/s over the run (default 100)",
    )
    suggest.add_argument("--all", action="store_true", help="also a rule for every syscall seen")
    suggest.add_argument(
        "--machine", help="the machine the log was recorded on (default: this one, uname -m)"
    )
    suggest.add_argument("--save-log", metavar="FILE", type=Path, help="keep strace's log here")
    suggest.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")


def warn(where: str, command: RuleCommand) -> None:
    for warning in command.warnings:
        print(f"osquery-audit-ext: warning: {where}: {warning}", file=sys.stderr)


def as_deletion(command: RuleCommand) -> RuleCommand:
    """The same rule to delete: the kernel never keeps -A's prepend flag."""
    return RuleCommand("delete", dataclasses.replace(command.rule, prepend=False))


def apply(commands: list[tuple[str, RuleCommand]]) -> None:
    """Send each change in order; on a refusal undo the earlier ones and re-raise, located."""
    done: list[tuple[str, Rule]] = []
    with AuditControl() as control:
        for where, command in commands:
            try:
                if command.op == "delete":
                    control.delete_rule(encode_rule(command.rule))
                else:
                    control.add_rule(encode_rule(command.rule))
            except AuditExtError as exc:
                undone = undo(control, done)
                raise type(exc)(f"{where}: {exc}{undone}") from None
            done.append((command.op, command.rule))


def undo(control: AuditControl, done: list[tuple[str, Rule]]) -> str:
    """Reverse changes already made (newest first); say what happened for the error message."""
    if not done:
        return " (nothing was changed)"
    failed = 0
    for op, rule in reversed(done):
        plain = dataclasses.replace(rule, prepend=False)
        try:
            if op == "delete":
                control.add_rule(encode_rule(plain))  # back at the end of its list
            else:
                control.delete_rule(encode_rule(plain))
        except AuditExtError:
            failed += 1
    if failed:
        return f" ({len(done) - failed} earlier changes undone, {failed} could not be)"
    return f" (the {len(done)} earlier changes were undone)"


def parse_arguments(texts: list[str], *, deleting: bool) -> list[tuple[str, RuleCommand]]:
    commands = []
    for text in texts:
        where = f"rule {text!r}"
        try:
            command = parse_rule(text)
        except RuleSyntaxError as exc:
            raise RuleSyntaxError(f"{where}: {exc}") from None
        if deleting:
            command = as_deletion(command)
        elif command.op == "delete":
            raise RuleSyntaxError(f"{where}: deletes a rule; use `rules delete`")
        warn(where, command)
        commands.append((where, command))
    return commands


def parse_file(path: Path) -> list[tuple[str, RuleCommand]]:
    """Every rule of a rules file; all errors are reported, one `FILE:LINE: ...` line each."""
    try:
        lines = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    commands, errors = [], []
    for lineno, line in enumerate(lines, start=1):
        where = f"{path}:{lineno}"
        words = split_rules_file_line(line)
        if not words:
            continue
        control = next((w for w in words if w.split("=", 1)[0] in CONTROL_OPTIONS), None)
        if control is not None:
            option = control.split("=", 1)[0]
            errors.append(
                f"{where}: {option} {CONTROL_OPTIONS[option]}: not a rule; `rules load` takes "
                "only -a, -A, -d, -w and -W lines (kernel settings: `status`)"
            )
            continue
        try:
            command = parse_rule(words)
        except RuleSyntaxError as exc:
            errors.append(f"{where}: {exc}")
            continue
        warn(where, command)
        commands.append((where, command))
    if errors:
        bad = f"{len(errors)} bad line{'s' if len(errors) > 1 else ''}"
        raise RuleSyntaxError("\n".join([*errors, f"{path}: {bad}, no rule was changed"]))
    return commands


def list_rules(key: str | None) -> int:
    with AuditControl() as control:
        raw = control.list_rules()
    lines = []
    for data in raw:
        rule = decode_rule(data)
        if key is None or key in KEY_SEPARATOR.join(rule.keys):
            lines.append(format_rule(rule))
    print("\n".join(lines) if lines else "No rules")
    return 0


def strace_command(cmd: list[str], log: Path) -> int:
    """Run CMD under `strace -f` writing `log`; its output goes to stderr (stdout is the
    rules). Returns CMD's exit status."""
    strace = shutil.which("strace")
    if strace is None:
        raise ConfigError(
            "strace is not installed (Debian: apt-get install strace; `make sysdeps` does it)"
        )
    program = cmd[0]
    if "/" in program:
        if not (os.path.isfile(program) and os.access(program, os.X_OK)):
            raise ConfigError(f"{program}: no such executable file")
    elif shutil.which(program) is None:
        raise ConfigError(f"{program}: command not found")
    try:
        proc = subprocess.run(
            [strace, "-f", "-n", "-ttt", "-y", "-q", "-o", str(log), "--", *cmd],
            stdin=subprocess.DEVNULL,
            stdout=2,
        )
    except OSError as exc:
        raise ConfigError(f"cannot run strace: {exc.strerror}") from None
    if not log.exists() or log.stat().st_size == 0:
        raise ConfigError(f"strace could not trace {program} (exit status {proc.returncode})")
    return proc.returncode


def read_log(path: Path, machine: str) -> StraceLog:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as lines:
            return read_strace_log(lines, machine, source=str(path))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def temp_dirs() -> tuple[str, ...]:
    """The directories whose files are not watched: pseudo file systems and temp dirs."""
    extra = [tempfile.gettempdir(), os.environ.get("TMPDIR", "")]
    return tuple(dict.fromkeys([*EXCLUDED_DIRS, *(d.rstrip("/") for d in extra if d)]))


def suggest(args: argparse.Namespace) -> int:
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if bool(cmd) == (args.log is not None):
        raise ConfigError("rules suggest: give either `-- CMD [ARGS...]` or `--from FILE`")
    if args.budget <= 0:
        raise ConfigError("--budget: must be a positive number of records/s")
    machine = args.machine or native_machine()
    if machine is None:
        raise ConfigError(f"cannot tell this machine's syscall table ({os.uname().machine})")
    if args.log is not None:
        log = read_log(args.log, machine)
        source = f"--from {args.log}"
    else:
        with tempfile.TemporaryDirectory(prefix="oae-strace-") as directory:
            path = args.save_log or Path(directory) / "strace.log"
            strace_command(cmd, path)
            log = read_log(path, machine)
        source = shlex.join(cmd)
    exe = args.exe
    if exe == "":
        if log.program is None:
            raise ConfigError("--exe: the log shows no program executed; give --exe PATH")
        exe = os.path.realpath(log.program)
    options = Options(
        key=args.key,
        exe=exe,
        auid=args.auid,
        budget=args.budget,
        all=args.all,
        excluded_dirs=temp_dirs(),
        resolve=os.path.realpath,
    )
    proposal = propose(log, options)
    sys.stdout.write(render(log, proposal, options, source))
    return 0


def run(args: argparse.Namespace) -> int:
    action = args.rules_action
    if action == "list":
        return list_rules(args.key)
    if action == "suggest":
        return suggest(args)
    if action == "load":
        commands = parse_file(args.file)
        if args.check:
            print(f"{args.file}: {len(commands)} rules, all valid")
            return 0
    else:
        commands = parse_arguments(args.rules, deleting=action == "delete")
    apply(commands)
    return 0
