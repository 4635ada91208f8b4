"""The osquery_audit_ext.ext zipapp: self-contained, autoloadable, and working without the venv."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from helpers.harness import running_core, short_dir

from osquery_audit_ext.app.extension import EXTENSION_NAME

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "scripts" / "build_ext.py"
SPEC_NAMES = sorted(p.stem for p in (ROOT / "tables").glob("*.table"))


def build(output: str, *args: str) -> None:
    subprocess.run(
        [sys.executable, str(BUILD), "--output", output, *args],
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def ext_file():
    with short_dir() as directory:
        path = os.path.join(directory, "osquery_audit_ext.ext")
        build(path)
        yield path


def interpreter_of(path: str) -> str:
    with open(path, "rb") as ext:
        first = ext.readline().decode()
    assert first.startswith("#!/") and first.endswith("\n")
    return first[2:].strip()


def run_isolated(ext: str, code: str) -> subprocess.CompletedProcess:
    """Python with no site-packages at all: only the stdlib and the zip itself."""
    program = f"import sys\nsys.path.insert(0, {ext!r})\n" + textwrap.dedent(code)
    return subprocess.run(
        [interpreter_of(ext), "-I", "-S", "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_autoloadable_file(ext_file: str):
    interpreter = interpreter_of(ext_file)
    assert os.path.isabs(interpreter) and os.access(interpreter, os.X_OK)
    mode = os.stat(ext_file).st_mode
    assert stat.S_IMODE(mode) == 0o755  # owner-executable, not world-writable
    assert ext_file.endswith(".ext")


def test_contents(ext_file: str):
    names = set(zipfile.ZipFile(ext_file).namelist())
    assert "__main__.py" in names
    assert {f"osquery_audit_ext/_tables/{n}.table" for n in SPEC_NAMES} <= names
    assert "osquery_audit_ext/core/tables/time.table" in names
    bindings = "osquery_audit_ext/sdk/osquery_thrift"
    assert {f"{bindings}/ExtensionManager.py", f"{bindings}/ttypes.py"} <= names
    assert not [n for n in names if n.startswith("osquery/")]  # osquery-python is not needed
    assert "thrift/protocol/TBinaryProtocol.py" in names
    assert not [n for n in names if n.endswith((".so", ".pyc", ".c")) or "__pycache__" in n]
    assert not [n for n in names if n.startswith(("apsw", "tests/", "future/"))]


def test_build_is_reproducible(ext_file: str):
    with short_dir() as directory:
        again = os.path.join(directory, "again.ext")
        build(again)
        assert Path(again).read_bytes() == Path(ext_file).read_bytes()


def test_python_flag_sets_the_shebang():
    with short_dir() as directory:
        path = os.path.join(directory, "x.ext")
        build(path, "--python", sys.executable)
        assert interpreter_of(path) == sys.executable
        bad = subprocess.run(
            [sys.executable, str(BUILD), "--output", path, "--python", "python3"],
            capture_output=True,
            text=True,
        )
        assert bad.returncode != 0 and "absolute path" in bad.stderr


def test_specs_and_protocol_load_from_the_zip_without_site_packages(ext_file: str):
    done = run_isolated(
        ext_file,
        """
        import osquery_audit_ext.sdk.tablespec as tablespec
        from osquery_audit_ext.sdk.osquery_thrift import ExtensionManager
        import osquery_audit_ext.sdk.runtime
        from osquery_audit_ext.sdk.transport import accelerated
        assert ".ext" in tablespec.__file__
        assert not accelerated()  # thrift's C extension is not in the zip: pure Python
        print(",".join(s.name for s in tablespec.all_specs()))
        print(tablespec.load_spec("audit_status").routes()[0]["id"])
        try:
            import apsw
        except ImportError:
            print("no apsw")
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [",".join(SPEC_NAMES), "column", "no apsw"]


def test_zipped_runtime_serves_a_core():
    """The runtime and thrift from the zip (pure-Python protocol), registering with a real core
    (C-accelerated protocol where thrift's extension is installed)."""
    with running_core(timeout=3, interval=0.5) as (core, _directory), short_dir() as build_dir:
        ext = os.path.join(build_dir, "o.ext")
        build(ext)
        code = f"""
        from osquery_audit_ext.sdk.plugin import Table
        from osquery_audit_ext.sdk.runtime import run_extension
        from osquery_audit_ext.sdk.tablespec import load_spec

        class Status(Table):
            spec = load_spec("audit_status")
            def generate(self, context):
                return [{{"enabled": 1, "pid": 42, "owner_process": "zipped"}}]

        raise SystemExit(run_extension("zipped", "1", [Status()], socket_path={core.socket_path!r},
                                       timeout=3, interval=0.5))
        """
        program = f"import sys\nsys.path.insert(0, {ext!r})\n" + textwrap.dedent(code)
        process = subprocess.Popen([interpreter_of(ext), "-I", "-S", "-c", program])
        try:
            core.wait_for_extension("zipped", 30, process=process)
            rows = core.query("SELECT enabled, pid, owner_process, lost FROM audit_status").rows
            assert rows == [{"enabled": "1", "pid": "42", "owner_process": "zipped", "lost": ""}]
        finally:
            process.terminate()
            process.wait(timeout=20)
        assert process.returncode == 0


def test_ext_as_osquery_runs_it_without_a_manager(ext_file: str):
    with short_dir() as directory:
        done = subprocess.run(
            [ext_file, "--socket", os.path.join(directory, "none.em"), "--timeout", "0.2", "--x"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert "no osquery extension manager on" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.kernel
def test_ext_launched_by_a_core_serves_the_audit_tables(ext_file: str):
    """The real thing: the .ext executed as osquery's autoload would, audit tables queried."""
    with running_core(timeout=3, interval=1) as (core, _directory):
        process = core.launch([ext_file])
        core.wait_for_extension(EXTENSION_NAME, 60, process=process)
        (row,) = core.query("SELECT enabled, backlog_limit FROM audit_status").rows
        assert row["enabled"] in ("0", "1", "2")
        core.query("SELECT count(*) FROM audit_rules")
