"""`shell`: interactive SQL over the audit tables, like osqueryi.

An embedded core runs in this process; the audit extension is launched as a subprocess
exactly as osquery would launch it (`--socket S --timeout T --interval I`, the config
path in $OSQUERY_AUDIT_EXT_CONFIG). Dot-commands: .tables, .schema, .mode, .help, .quit.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Callable, TextIO

from ..app.launched_core import running_core
from ..app.settings import CONFIG_ENV, load_settings
from ..app.state import state_owner
from ..sdk.formats import MODES, render

if TYPE_CHECKING:
    from ..core.manager import EmbeddedCore

HISTORY_FILE = "~/.osquery_audit_ext_history"
PROMPT = "osquery> "
CONTINUATION = "    ...> "

HELP = """\
.exit            Exit this program
.help            Show this message
.mode MODE       Set output mode where MODE is one of:
                   csv      Comma-separated values
                   json     JSON, as osqueryi --json prints it
                   line     One value per line
                   pretty   Pretty printed SQL results (default)
.quit            Exit this program
.schema [TABLE]  Show the CREATE statements
.tables [TABLE]  List names of tables
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sql", nargs="?", metavar="SQL", help="run one statement and exit")
    mode = parser.add_mutually_exclusive_group()
    for name in ("json", "csv", "line"):
        mode.add_argument(
            f"--{name}", dest="mode", action="store_const", const=name, help=f"{name} output"
        )
    parser.set_defaults(mode="pretty")


class Shell:
    """osqueryi's input loop: dot-commands, statements until complete, errors counted."""

    def __init__(
        self,
        core: EmbeddedCore,
        *,
        mode: str = "pretty",
        out: TextIO = sys.stdout,
        err: TextIO = sys.stderr,
    ) -> None:
        import apsw

        self.core = core
        self.mode = mode
        self.out = out
        self.err = err
        self.errors = 0
        self._buffer: list[str] = []
        self._start_line = 0
        self._complete: Callable[[str], bool] = apsw.complete

    def execute(self, sql: str, where: str = "Error:") -> bool:
        """Run SQL and print its rows; report a failure as osqueryi does."""
        from ..core.sql import SQLError

        try:
            result = self.core.query(sql)
        except SQLError as exc:
            print(f"{where} {exc}", file=self.err)
            self.errors += 1
            return False
        self.out.write(render(result, self.mode))
        self.out.flush()
        return True

    def meta(self, line: str) -> bool:
        """A dot-command; False to leave the shell."""
        words = line[1:].split()
        if not words:
            return True
        command, args = words[0], words[1:]

        def is_(name: str) -> bool:
            return name.startswith(command)

        if is_("quit") or is_("exit"):
            return False
        if is_("help"):
            self.out.write(HELP)
        elif is_("mode") and len(args) == 1:
            if args[0] in MODES:
                self.mode = args[0]
            else:
                print(f"Error: mode should be one of: {' '.join(sorted(MODES))}", file=self.err)
                self.errors += 1
        elif is_("tables") and len(args) <= 1:
            for name in self.core.table_names():
                if not args or name.startswith(args[0]):
                    self.out.write(f"  => {name}\n")
        elif is_("schema") and len(args) <= 1:
            for name in self.core.table_names():
                if not args or name.startswith(args[0]):
                    self.out.write(self.core.table_schema(name) + "\n")
        else:
            print(
                f'Error: unknown command or invalid arguments:  "{command}". '
                'Enter ".help" for help',
                file=self.err,
            )
            self.errors += 1
        self.out.flush()
        return True

    @property
    def pending(self) -> bool:
        """An unfinished statement is waiting for more lines."""
        return bool(self._buffer)

    def discard(self) -> None:
        """Drop a half-typed statement (Ctrl-C at the prompt)."""
        self._buffer = []

    def feed(self, line: str, number: int, *, interactive: bool) -> bool:
        """One input line; False when it asked to leave the shell."""
        if not self._buffer:
            if not line.strip():
                return True
            if line.startswith("."):
                return self.meta(line.strip())
            self._start_line = number
        self._buffer.append(line)
        sql = "\n".join(self._buffer)
        if ";" in line and self._complete(sql):
            self._buffer = []
            where = "Error:" if interactive else f"Error: near line {self._start_line}:"
            try:
                self.execute(sql, where)
            except KeyboardInterrupt:
                print("Interrupted", file=self.err)
        return True

    def run(self, lines: Iterable[str], *, interactive: bool) -> int:
        """Process input lines; 1 when any error was reported (as osqueryi returns)."""
        for number, raw in enumerate(lines, start=1):
            if not self.feed(raw.rstrip("\r\n"), number, interactive=interactive):
                return 1 if self.errors else 0
        leftover = "\n".join(self._buffer).strip()
        if leftover:
            print(f"Error: incomplete SQL: {leftover}", file=self.err)
            self.errors += 1
        return 1 if self.errors else 0


def _interactive_lines(shell: Shell) -> Iterator[str]:
    """Lines typed at the prompt, with readline editing, history and table completion."""
    try:
        import readline
    except ImportError:  # pragma: no cover - every Debian Python has it
        readline = None  # type: ignore[assignment]
    history = os.path.expanduser(HISTORY_FILE)
    if readline is not None:
        with contextlib.suppress(OSError):
            readline.read_history_file(history)
        readline.set_history_length(1000)
        names = shell.core.table_names()
        readline.set_completer(
            lambda text, state: ([n for n in names if n.startswith(text)] + [None])[state]
        )
        readline.parse_and_bind("tab: complete")
    print("Using a virtual database. Need help, type '.help'", file=shell.out)
    try:
        while True:
            try:
                line = input(CONTINUATION if shell.pending else PROMPT)
            except KeyboardInterrupt:
                print(file=shell.out)
                shell.discard()
                continue
            except EOFError:
                print(file=shell.out)
                return
            yield line
    finally:
        if readline is not None:
            with contextlib.suppress(OSError):
                readline.write_history_file(history)


def _state_dir_taken(config: str | None) -> bool:
    """Whether a running instance (osqueryd's extension) owns the state dir: then this shell
    keeps cursors and events in memory instead of failing, and says so."""
    directory = load_settings(config).state.directory()
    owner = state_owner(directory) if directory else None
    if owner is None:
        return False
    logging.warning(
        "the state dir %s belongs to a running instance (pid %s): this shell keeps its "
        "state in memory and sees only events read from now on",
        directory,
        owner,
    )
    return True


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="Warning: %(message)s")
    config = args.config or os.environ.get(CONFIG_ENV)
    with running_core(config, memory_state=_state_dir_taken(config)) as local:
        shell = Shell(local.core, mode=args.mode)
        if args.sql is not None:
            if args.sql.startswith("."):
                shell.meta(args.sql)
                return 1 if shell.errors else 0
            return 0 if shell.execute(args.sql) else 1
        if sys.stdin.isatty():
            return shell.run(_interactive_lines(shell), interactive=True)
        return shell.run(sys.stdin, interactive=False)
