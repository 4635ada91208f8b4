"""`osquery-audit-ext rules suggest`: a real program under the real strace, clear errors, and
every suggested rule accepted by the real auditctl and by `rules load`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from helpers.kernel import run_auditctl

from osquery_audit_ext import cli
from osquery_audit_ext.audit.control import AuditControl
from osquery_audit_ext.audit.rule.codec import decode_rule
from osquery_audit_ext.audit.rule.parse import split_rules_file_line
from osquery_audit_ext.audit.rule.suggest import EXCLUDED_DIRS
from osquery_audit_ext.commands import rules as rules_command

if TYPE_CHECKING:
    from osquery_audit_ext.bench.auditd import PrivateAuditd

KEY = "oaetest_suggest"
ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "audit" / "rule" / "golden" / "suggest"
needs_strace = pytest.mark.skipif(
    shutil.which("strace") is None, reason="strace is not installed (make sysdeps)"
)
# The small program: writes, renames, chmods and removes files in its directory, and a
# temporary file (not watched), then exits 3.
PROGRAM = """
set -e
cd "$1"
echo one > conf.new
mv conf.new conf
chmod 600 conf
echo x > junk
rm junk
t=$(mktemp)
echo t > "$t"
rm "$t"
exit 3
"""


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A directory outside the temporary directories (their files get no watch): beside the
    checkout, or in the home directory when the checkout itself is in /tmp (a CI clone)."""
    outside = [
        base
        for base in (ROOT, Path.home())
        if not any(str(base.resolve()).startswith(d + "/") for d in EXCLUDED_DIRS)
    ]
    if not outside:
        pytest.skip("the checkout and the home directory are both in temporary directories")
    path = outside[0] / f".oae-suggest-{os.getpid()}"
    path.mkdir()
    try:
        yield path
    finally:
        shutil.rmtree(path)


def suggest(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = cli.main(["rules", "suggest", *args])
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


def rule_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if split_rules_file_line(line)]


@needs_strace
def test_a_real_program_under_strace(
    workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "run.strace"
    text = suggest(
        capsys, "--key", KEY, "--save-log", str(log), "--", "sh", "-c", PROGRAM, "sh", str(workdir)
    )
    header = text.splitlines()[:2]
    quoted = PROGRAM.replace("\n", "\\n")  # the command line stays one comment line
    assert header[0] == f"# osquery-audit-ext rules suggest: sh -c '{quoted}' sh {workdir}"
    assert header[1].endswith("; exit status 3")
    lines = rule_lines(text)
    assert f"-a always,exit -F arch=b64 -S execve,execveat -F key={KEY}-exec" in lines
    assert any(f"-S rename,renameat,renameat2 -F key={KEY}-file-rename" in x for x in lines)
    assert any(f"-F key={KEY}-file-chmod" in x for x in lines)
    assert any(f"-F key={KEY}-file-unlink" in x for x in lines)
    watches = [x for x in lines if x.startswith("-w ")]
    assert watches == [
        f"-w {workdir}/conf -p wa -k {KEY}-watch",
        f"-w {workdir}/conf.new -p wa -k {KEY}-watch",
        f"-w {workdir}/junk -p wa -k {KEY}-watch",
    ]
    # The counts are the log's: the saved log gives the same file.
    exec_count = sum(1 for line in log.read_text().splitlines() if "execve(" in line)
    assert f"# exec (program execution): {exec_count} events" in text
    again = suggest(capsys, "--key", KEY, "--from", str(log))
    assert rule_lines(again) == lines
    # The dry half of `rules load`: every line parses.
    path = tmp_path / "suggested.rules"
    path.write_text(text)
    assert len(rules_command.parse_file(path)) == len(lines)
    assert cli.main(["rules", "load", "--check", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: {len(lines)} rules, all valid\n"


@needs_strace
def test_scoped_to_the_program(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = suggest(
        capsys, "--exe", "--auid", "0", "--all", "--", "sh", "-c", PROGRAM, "sh", str(workdir)
    )
    sh = os.path.realpath(shutil.which("sh") or "/bin/sh")
    lines = rule_lines(text)
    assert lines and all(f"-F exe={sh} -F auid=0 " in line for line in lines)
    assert f"# scoped with exe={sh} auid=0" in text


def test_errors_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def error(*args: str) -> str:
        assert cli.main(["rules", "suggest", *args]) == 1
        out = capsys.readouterr()
        assert out.out == "" and len(out.err.splitlines()) == 1, out.err
        return out.err

    assert "command not found" in error("--", "oaetest-no-such-command")
    assert "no such executable file" in error("--", "/nonexistent/oaetest")
    bad = tmp_path / "bad.log"
    bad.write_text("hello\n")
    assert f"{bad}: no system calls found: not a `strace -f` log" in error("--from", str(bad))
    assert "cannot read /nonexistent/x.log" in error("--from", "/nonexistent/x.log")
    assert "give either" in error()
    assert "give either" in error("--from", str(bad), "--", "true")
    assert "--budget" in error("--budget", "0", "--from", str(bad))
    nothing = tmp_path / "noexec.log"
    nothing.write_text("getpid() = 1\n")
    assert "--exe: the log shows no program" in error("--exe", "--from", str(nothing))
    assert "-F auid=nosuchuser_oaetest" in error(
        "--auid", "nosuchuser_oaetest", "--from", str(GOLDEN / "net.strace")
    )
    monkeypatch.setenv("PATH", str(tmp_path))
    assert "strace is not installed" in error("--", "true")


def loadable_here(line: str) -> bool:
    """Whether the kernel can take the rule on this host: a dir= must exist, and the
    directory of a watched path or an exe= (the kernel refuses the rule with ENOENT)."""
    for word in line.split():
        name, _, value = word.partition("=")
        if name == "dir":
            found = os.path.isdir(value)
        elif name in ("exe", "path") or word.startswith("/"):
            found = os.path.isdir(os.path.dirname(value or word))
        else:
            continue
        if not found:
            return False
    return True


def remove_ours() -> None:
    with AuditControl() as control:
        for data in control.list_rules():
            if any(k.startswith(KEY) for k in decode_rule(data).keys):
                control.delete_rule(data)


def as_deletion(line: str) -> list[str]:
    words = line.split()
    return ["-d" if w == "-a" else "-W" if w == "-w" else w for w in words]


@needs_strace
@pytest.mark.kernel
def test_auditctl_and_rules_load_accept_every_suggested_rule(
    kernel_rw: None, workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = suggest(capsys, "--key", KEY, "--all", "--", "sh", "-c", PROGRAM, "sh", str(workdir))
    scoped = suggest(
        capsys, "--key", KEY, "--exe", "--auid", "0", "--", "sh", "-c", PROGRAM, "sh", str(workdir)
    )
    # The goldens' rules whose paths' directories exist here (the kernel refuses the others).
    golden = [
        line.replace("-F key=", f"-F key={KEY}").replace(" -k ", f" -k {KEY}")
        for path in sorted(GOLDEN.glob("*.rules"))
        for line in rule_lines(path.read_text())
        if loadable_here(line)
    ]
    golden = list(dict.fromkeys(golden))  # the same rule in several files: once
    assert len(golden) > 60 and all(KEY in line for line in golden)
    rules = tmp_path / "suggested.rules"
    for content in (text, scoped, "\n".join(golden)):
        rules.write_text(content)
        expected = rule_lines(content)
        before = run_auditctl("-l")
        try:
            run_auditctl("-R", str(rules))
            listed = run_auditctl("-l").splitlines()
            assert [x for x in listed if KEY in x] == expected  # exactly as auditctl lists them
            for line in expected:
                run_auditctl(*as_deletion(line))
            assert run_auditctl("-l") == before
            assert cli.main(["rules", "load", str(rules)]) == 0
            assert [x for x in run_auditctl("-l").splitlines() if KEY in x] == expected
            assert cli.main(["rules", "delete", *expected]) == 0
            assert run_auditctl("-l") == before
        finally:
            remove_ours()


def suggested_costs(text: str) -> dict[str, tuple[int, int]]:
    """Rule line -> (events, records) from the comment line above it."""
    costs, last = {}, None
    for line in text.splitlines():
        found = re.match(r"# [^:]+: (\d+) events, ~(\d+) records", line)
        if found:
            last = (int(found.group(1)), int(found.group(2)))
        elif split_rules_file_line(line):
            assert last is not None, line
            costs[line] = last
    return costs


def events_of_tree(lines: list[str], root_pid: int) -> dict[str, Counter[str]]:
    """Record types per key of the events made by root_pid and its descendants."""
    pids, keys, types = {str(root_pid)}, {}, {}
    for line in lines:
        serial = re.search(r"msg=audit\([\d.]+:(\d+)\)", line)
        if serial is None:
            continue
        types.setdefault(serial.group(1), Counter())[line.split()[0][5:]] += 1
        if line.startswith("type=SYSCALL"):
            pid = re.search(r" pid=(\d+)", line).group(1)  # type: ignore[union-attr]
            ppid = re.search(r" ppid=(\d+)", line).group(1)  # type: ignore[union-attr]
            key = re.search(r' key="([^"]*)"', line)
            if key and (pid in pids or ppid in pids):
                pids.add(pid)
                keys[serial.group(1)] = key.group(1)
    out: dict[str, Counter[str]] = {}
    for serial, key in keys.items():
        out.setdefault(key, Counter()).update(types[serial])
    return out


@needs_strace
@pytest.mark.kernel
def test_the_kernel_makes_the_events_and_records_suggested(
    kernel_rw: None,
    running_auditd: PrivateAuditd,
    workdir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Run the program again with the suggested syscall rules loaded: each rule's events are
    the count suggested, and its records the estimate (auditd's log lacks the EOE records, one
    an event; BPRM_FCAPS, written when root executes a program, is not in the estimate)."""
    sh = shutil.which("sh") or "/bin/sh"
    text = suggest(capsys, "--key", KEY, "--", sh, "-c", PROGRAM, "sh", str(workdir))
    costs = {line: cost for line, cost in suggested_costs(text).items() if line.startswith("-a")}
    assert sum(events for events, _ in costs.values()) >= 10
    for path in workdir.iterdir():
        path.unlink()  # the second run starts from the same state
    rules = tmp_path / "syscall.rules"
    rules.write_text("\n".join(costs) + "\n")  # watches overlap them: one key an event
    try:
        assert cli.main(["rules", "load", str(rules)]) == 0
        proc = subprocess.Popen([sh, "-c", PROGRAM, "sh", str(workdir)])
        assert proc.wait(timeout=60) == 3
        expected = sum(events for events, _ in costs.values())
        deadline = time.monotonic() + 10
        while True:
            seen = events_of_tree(running_auditd.log_lines(), proc.pid)
            if sum(c["SYSCALL"] for c in seen.values()) >= expected or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        remove_ours()
    by_key: dict[str, list[int]] = {}  # a category's b64 and b32 rules share its key
    for line, (events, records) in costs.items():
        total = by_key.setdefault(line.rsplit("key=", 1)[1], [0, 0])
        total[0] += events
        total[1] += records
    assert set(seen) <= set(by_key)
    for key, (events, records) in by_key.items():
        got = seen.get(key, Counter())
        assert got["SYSCALL"] == events, (key, got)
        assert sum(got.values()) - got["BPRM_FCAPS"] + events == records, (key, got)
