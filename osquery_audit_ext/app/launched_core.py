"""The embedded core with our audit extension launched as osquery launches it.

Used by `shell`, `daemon`, `packs check` and the benchmark: the extension started as a
subprocess with only `--socket --timeout --interval` (its config path handed over in
$OSQUERY_AUDIT_EXT_CONFIG), waited for until it registers, and stopped with the core.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import AuditExtError
from .extension import EXTENSION_NAME, extension_argv
from .settings import CONFIG_ENV, load_settings
from .state import STATE_DIR_ENV

if TYPE_CHECKING:
    from ..core.manager import EmbeddedCore

REGISTER_TIMEOUT = 30.0


@dataclass
class LocalCore:
    core: EmbeddedCore
    extension: subprocess.Popen  # our extension's process, for its pid and exit status


def embedded_core_class() -> type[EmbeddedCore]:
    """The core's class, or one clear error when its SQLite binding (apsw) is missing."""
    try:
        from ..core.manager import EmbeddedCore
    except ImportError as exc:
        raise AuditExtError(f"the embedded core needs the apsw package ({exc})") from None
    return EmbeddedCore


def launch_audit_extension(
    core: EmbeddedCore,
    config: str | None,
    *,
    respawn: bool = False,
    register_timeout: float = REGISTER_TIMEOUT,
    memory_state: bool = False,
) -> subprocess.Popen:
    """Start our extension under a started core and wait until it has registered.

    memory_state: keep cursors and eid marks in memory (unless the config names a state
    dir): for throwaway runs beside a running instance that owns the state directory."""
    env = dict(os.environ)
    if config:
        env[CONFIG_ENV] = os.path.abspath(config)
    if memory_state:
        env[STATE_DIR_ENV] = "-"
    process = core.launch(extension_argv(), env=env, respawn=respawn)
    core.wait_for_extension(EXTENSION_NAME, register_timeout, process=process)
    return process


@contextlib.contextmanager
def running_core(
    config: str | None,
    *,
    verbose: bool = False,
    register_timeout: float = REGISTER_TIMEOUT,
    memory_state: bool = False,
    **core_options: float,
) -> Iterator[LocalCore]:
    """A started core in a private socket directory with the audit extension registered;
    `core_options` go to EmbeddedCore. Everything is stopped and removed on exit."""
    core_class = embedded_core_class()
    load_settings(config)  # a bad config is one clear error now, not a dying extension
    directory = tempfile.mkdtemp(prefix="oae-")
    core = core_class(os.path.join(directory, "shell.em"), verbose=verbose, **core_options)
    try:
        core.start()
        process = launch_audit_extension(
            core, config, register_timeout=register_timeout, memory_state=memory_state
        )
        yield LocalCore(core, process)
    finally:
        core.stop()
        shutil.rmtree(directory, ignore_errors=True)
