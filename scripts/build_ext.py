"""Build osquery_audit_ext.ext: one self-contained zipapp that osqueryd can autoload.

Inside: our package (with the table specs as osquery_audit_ext/_tables, and its generated
Thrift bindings), the pure-Python part of thrift (its C accelerator is left out: it is built
for one Python version, and the binary protocol gives the same bytes without it) and tomli
when building for an interpreter without tomllib. apsw is left out: only the embedded core (shell,
daemon) needs it.
The first line is `#!` and an absolute interpreter path, as osquery executes the file
directly. Entries are sorted and time-stamped 1980-01-01, so a build is reproducible.

    python scripts/build_ext.py [--output osquery_audit_ext.ext] [--python /usr/bin/python3]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "osquery_audit_ext"
# Suffixes taken from our package; everything else there (C sources, caches) stays out.
PACKAGE_SUFFIXES = (".py", ".table", ".tsv")
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
MAIN = "import sys\nfrom osquery_audit_ext.cli import main\n\nsys.exit(main())\n"


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"build_ext: package {name} is not installed for {sys.executable}")
    return Path(next(iter(spec.submodule_search_locations)))


def tree(source: Path, archive_root: str, suffixes: tuple[str, ...]) -> Iterator[tuple[str, Path]]:
    """(name in the archive, file) for every file with one of the suffixes, no caches."""
    for path in sorted(source.rglob("*")):
        if "__pycache__" in path.parts or not path.is_file() or path.suffix not in suffixes:
            continue
        yield f"{archive_root}/{path.relative_to(source).as_posix()}", path


def contents(target_python: tuple[int, int]) -> dict[str, bytes]:
    files: dict[str, bytes] = {"__main__.py": MAIN.encode()}
    sources = [
        tree(ROOT / PACKAGE, PACKAGE, PACKAGE_SUFFIXES),
        tree(ROOT / "tables", f"{PACKAGE}/_tables", (".table", ".columns")),
        tree(package_dir("thrift"), "thrift", (".py",)),
    ]
    if target_python < (3, 11):
        sources.append(tree(package_dir("tomli"), "tomli", (".py",)))
    for source in sources:
        for name, path in source:
            files[name] = path.read_bytes()
    return files


def directories(names: list[str]) -> list[str]:
    """Explicit directory entries, so resource lookups see folders inside the zip."""
    found = set()
    for name in names:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            found.add("/".join(parts[:i]) + "/")
    return sorted(found)


def python_version(interpreter: str) -> tuple[int, int]:
    out = subprocess.run(
        [interpreter, "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return int(out[0]), int(out[1])


def build(output: Path, interpreter: str) -> None:
    version = python_version(interpreter)
    if version < (3, 9):
        raise SystemExit(f"build_ext: {interpreter} is Python {version}, 3.9 or later is needed")
    files = contents(version)
    temporary = output.with_name(output.name + ".tmp")
    with open(temporary, "wb") as out:
        out.write(f"#!{interpreter}\n".encode())
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in directories(list(files)):
                entry = zipfile.ZipInfo(name, ZIP_TIME)
                entry.external_attr = (0o40755 << 16) | 0x10
                archive.writestr(entry, b"")
            for name in sorted(files):
                entry = zipfile.ZipInfo(name, ZIP_TIME)
                entry.compress_type = zipfile.ZIP_DEFLATED
                entry.external_attr = 0o100644 << 16
                archive.writestr(entry, files[name])
    os.chmod(temporary, 0o755)  # owner-executable, not world-writable: osquery's autoload rules
    os.replace(temporary, output)


def default_interpreter() -> str:
    """The real interpreter behind this one (a venv's python resolves to its base)."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output", default=str(ROOT / "osquery_audit_ext.ext"), help="file to write"
    )
    parser.add_argument(
        "--python",
        default=default_interpreter(),
        help="absolute path of the interpreter for the #! line (default: this one's base)",
    )
    args = parser.parse_args(argv)
    if not os.path.isabs(args.python) or not os.access(args.python, os.X_OK):
        parser.error(f"--python must be an absolute path to an executable: {args.python}")
    build(Path(args.output), args.python)
    print(f"build_ext: wrote {args.output} (#!{args.python})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
