"""`extension`: what osquery's autoload starts, `--socket S --timeout T --interval I [--verbose]`.

The configuration file comes from --config, else $OSQUERY_AUDIT_EXT_CONFIG (osquery passes
only the three flags, so the embedded core hands the path over in the environment).
"""

from __future__ import annotations

import argparse
import logging
import sys

import osquery_audit_ext

from ..sdk.client import DEFAULT_SOCKET
from ..sdk.runtime import run_extension, wait_for_manager


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--socket", default=DEFAULT_SOCKET, help="osquery extension manager socket")
    parser.add_argument(
        "--timeout", type=float, default=3.0, help="seconds to wait for the manager socket"
    )
    parser.add_argument(
        "--interval", type=float, default=3.0, help="seconds between checks that core is alive"
    )
    parser.add_argument("--verbose", action="store_true", help="log what the extension does")


def run(args: argparse.Namespace) -> int:
    # osquery shows an extension's stderr in its own log: say who is talking.
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="osquery-audit-ext: %(levelname)s: %(message)s",
    )
    # Touch kernel audit only once a core is there to serve: no manager, no side effects.
    if not wait_for_manager(args.socket, args.timeout):
        print(
            f"osquery-audit-ext: no osquery extension manager on {args.socket} "
            f"after {args.timeout:g} s",
            file=sys.stderr,
        )
        return 1
    # Imported here: the kernel-facing modules load only once a core is there.
    from ..app.extension import EXTENSION_NAME, build_extension

    # Without --config: $OSQUERY_AUDIT_EXT_CONFIG, then the default path.
    tables, cleanup = build_extension(args.config)
    return run_extension(
        EXTENSION_NAME,
        osquery_audit_ext.__version__,
        tables,
        socket_path=args.socket,
        timeout=args.timeout,
        interval=args.interval,
        verbose=args.verbose,
        on_exit=cleanup,
    )
