"""`daemon`: the embedded core as a long-running service, audit extension loaded.

With `--config_path FILE` it is also osqueryd's scheduler: the osquery JSON config's
schedule and packs run every interval and their results are written to
`--logger_path DIR` as osqueryd's filesystem logger writes them (core/scheduler.py).

Other extensions may register with it too, and `query --socket PATH` (or any osquery
client) can query it. It stops on SIGTERM/SIGINT or a shutdown request over the socket;
the audit extension it launched is restarted if it dies, as osquery's watcher does.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from ..app.launched_core import embedded_core_class, launch_audit_extension
from ..app.settings import CONFIG_ENV, load_settings
from ..errors import AuditExtError
from ..sdk.client import DEFAULT_SOCKET

DEFAULT_LOGGER_PATH = "/var/log/osquery"  # osqueryd's OSQUERY_LOG_HOME


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--socket",
        default=DEFAULT_SOCKET,
        help=f"extension manager socket to serve (default {DEFAULT_SOCKET})",
    )
    parser.add_argument(
        "--timeout", type=float, default=3.0, help="extensions_timeout given to extensions"
    )
    parser.add_argument(
        "--interval", type=float, default=3.0, help="seconds between extension health pings"
    )
    parser.add_argument(
        "--config_path",
        "--config-path",
        dest="config_path",
        metavar="FILE",
        help="an osquery JSON config (schedule, packs, options, decorators) to run as osqueryd",
    )
    parser.add_argument(
        "--logger_path",
        "--logger-path",
        dest="logger_path",
        metavar="DIR",
        default=DEFAULT_LOGGER_PATH,
        help="where osqueryd.results.log and osqueryd.snapshots.log are written "
        f"(default {DEFAULT_LOGGER_PATH})",
    )
    parser.add_argument("--verbose", action="store_true", help="log registrations and pings")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="osquery-audit-ext daemon: %(message)s",
    )
    core_class = embedded_core_class()
    parent = os.path.dirname(os.path.abspath(args.socket))
    try:
        os.makedirs(parent, mode=0o755, exist_ok=True)
    except OSError as exc:
        raise AuditExtError(f"cannot create {parent}: {exc.strerror}") from None
    load_settings(args.config)  # a bad config is one clear error now, not a dying extension
    scheduler = None
    if args.config_path:
        from ..core.results_log import FilesystemLogger
        from ..core.schedule import load_daemon_config

        schedule = load_daemon_config(args.config_path)  # a bad schedule fails here, once
        for warning in schedule.warnings:
            print(f"osquery-audit-ext daemon: {args.config_path}: {warning}", file=sys.stderr)
        logger = FilesystemLogger(args.logger_path)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: stop.set())
    core = core_class(
        args.socket, timeout=args.timeout, interval=args.interval, verbose=args.verbose
    )
    core.start()
    failure: list[AuditExtError] = []
    try:
        config = args.config or os.environ.get(CONFIG_ENV)
        launch_audit_extension(core, config, respawn=True)
        print(f"osquery-audit-ext daemon: serving on {args.socket}", file=sys.stderr, flush=True)
        if args.config_path:
            from ..core.scheduler import Scheduler

            scheduler = Scheduler(core.query_scanned, schedule, logger)

            def schedule_loop() -> None:
                try:
                    scheduler.run(stop)
                except AuditExtError as exc:  # results cannot be written: stop, as osqueryd
                    failure.append(exc)
                    stop.set()

            threading.Thread(target=schedule_loop, name="scheduler", daemon=True).start()
            print(
                f"osquery-audit-ext daemon: {len(schedule.queries)} scheduled queries, "
                f"results in {logger.results_path}",
                file=sys.stderr,
                flush=True,
            )
        while not stop.wait(0.5) and not core.shutdown_requested.is_set():
            pass
    finally:
        stop.set()
        core.stop()
    if failure:
        raise failure[0]
    return 0
