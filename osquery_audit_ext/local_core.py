"""The embedded core with our audit extension launched as osquery launches it.

Used by `shell`, `packs check` and the benchmark: a private socket directory, the extension
started as a subprocess with only `--socket --timeout --interval` (its config path handed over
in $OSQUERY_AUDIT_EXT_CONFIG), and everything stopped and removed on exit.
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

from .commands.extension import EXTENSION_NAME, extension_argv
from .errors import AuditExtError
from .settings import CONFIG_ENV, load_settings

if TYPE_CHECKING:
    from .core.manager import EmbeddedCore

REGISTER_TIMEOUT = 30.0


@dataclass
class LocalCore:
    core: EmbeddedCore
    extension: subprocess.Popen  # our extension's process, for its pid and exit status


@contextlib.contextmanager
def running_core(
    config: str | None,
    *,
    verbose: bool = False,
    register_timeout: float = REGISTER_TIMEOUT,
    **core_options: float,
) -> Iterator[LocalCore]:
    """A started core with the audit extension registered; `core_options` go to EmbeddedCore."""
    try:
        from .core.manager import EmbeddedCore
    except ImportError as exc:
        raise AuditExtError(f"the embedded core needs the apsw package ({exc})") from None
    load_settings(config)  # a bad config is one clear error now, not a dying extension
    directory = tempfile.mkdtemp(prefix="oae-")
    core = EmbeddedCore(os.path.join(directory, "shell.em"), verbose=verbose, **core_options)
    try:
        core.start()
        env = dict(os.environ)
        if config:
            env[CONFIG_ENV] = os.path.abspath(config)
        process = core.launch(extension_argv(), env=env)
        core.wait_for_extension(EXTENSION_NAME, register_timeout, process=process)
        yield LocalCore(core, process)
    finally:
        core.stop()
        shutil.rmtree(directory, ignore_errors=True)
