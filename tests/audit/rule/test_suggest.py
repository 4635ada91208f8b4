"""`rules suggest`'s pure part: golden strace logs -> golden rules files, and what the rules
say (categories, ABIs, watches, scoping, counts, budget)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from osquery_audit_ext.audit.rule.parse import parse_rule, split_rules_file_line
from osquery_audit_ext.audit.rule.suggest import (
    RULE_CATEGORIES,
    Options,
    Proposal,
    propose,
    render,
)
from osquery_audit_ext.audit.strace_log import StraceLog, read_strace_log
from osquery_audit_ext.audit.syscalls import MACHINE_AUDIT_ARCH, syscall_number, syscall_table
from osquery_audit_ext.errors import RuleSyntaxError

GOLDEN = Path(__file__).parent / "golden" / "suggest"
LOGS = sorted(GOLDEN.glob("*.strace"))
MACHINE = "x86_64"  # the machine the logs were recorded on
# Option sets with a golden each: NAME.rules, NAME.all.rules (scoped to the log's program).
VARIANTS = {
    "": lambda log: Options(),
    ".all": lambda log: Options(key="k", exe=log.program, auid="1000", budget=2000, all=True),
}


def load(path: Path) -> StraceLog:
    return read_strace_log(path.read_text().splitlines(), MACHINE, source=path.name)


def suggest(path: Path, options: Options) -> tuple[Proposal, str]:
    log = load(path)
    proposal = propose(log, options)
    return proposal, render(log, proposal, options, f"--from {path.name}")


def rule_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if split_rules_file_line(line)]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.stem)
def test_golden_rules(path: Path, variant: str, request: pytest.FixtureRequest) -> None:
    """Each log's rules file as NAME[.variant].rules says; `--update-goldens` rewrites it."""
    _, text = suggest(path, VARIANTS[variant](load(path)))
    golden = GOLDEN / f"{path.stem}{variant}.rules"
    if request.config.getoption("update_goldens"):
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.rules")), ids=lambda p: p.name)
def test_every_golden_rule_parses(path: Path) -> None:
    """The dry half of `rules load`: every line is a rule the parser takes, no warning."""
    lines = rule_lines(path.read_text())
    assert lines
    for line in lines:
        command = parse_rule(split_rules_file_line(line), machine=MACHINE)
        assert command.op == "add" and not command.warnings, line


def test_categories_name_real_syscalls() -> None:
    """No typo in the category table: each name is in some machine's syscall table."""
    for category, _, names in RULE_CATEGORIES:
        for name in names:
            assert any(syscall_number(m, name) is not None for m in MACHINE_AUDIT_ARCH), (
                category,
                name,
            )


def test_network_program() -> None:
    proposal, text = suggest(GOLDEN / "net.strace", Options())
    by_key = {}
    for rule in proposal.rules:
        by_key.setdefault(rule.text.rsplit("=", 1)[-1].split()[-1], []).append(rule)
    assert text.startswith("# osquery-audit-ext rules suggest: --from net.strace\n")
    categories = [r.category for r in proposal.rules]
    for wanted in ("exec", "network-connect", "network-bind", "network-accept", "file-chown"):
        assert categories.count(wanted) == 2  # b64 and b32
    accept = [r for r in proposal.rules if r.category == "network-accept"]
    assert "-F arch=b64 -S accept,accept4 " in accept[0].text
    assert "-F arch=b32 -S accept4 " in accept[1].text  # i386 has no accept
    assert (accept[0].events, accept[1].events) == (1, 0)
    assert accept[0].records == 4  # SYSCALL SOCKADDR PROCTITLE EOE
    bind = next(r for r in proposal.rules if r.category == "network-bind")
    assert bind.events == 2  # bind and listen
    watches = [r.text for r in proposal.rules if r.category == "watch"]
    assert watches == [
        "-w /srv/oae14/state.bak -p wa -k suggested-watch",
        "-w /srv/oae14/state.db -p wa -k suggested-watch",
        "-w /srv/oae14/state.lnk -p wa -k suggested-watch",
    ]
    db = next(r for r in proposal.rules if "state.db" in r.text)
    assert db.events == 2  # opened for writing, chown-ed (link/symlink change the others)


def test_32_bit_program_gets_its_b32_privilege_rule() -> None:
    proposal, _ = suggest(GOLDEN / "p32.strace", Options())
    privilege = [r for r in proposal.rules if r.category == "privilege"]
    assert [("b32" in r.text, r.events) for r in privilege] == [(False, 0), (True, 1)]
    assert "setuid32" in privilege[1].text and "setuid32" not in privilege[0].text


def test_many_files_in_a_directory_watch_the_directory_and_temp_files_none() -> None:
    proposal, text = suggest(GOLDEN / "shell.strace", Options())
    watches = [r for r in proposal.rules if r.category == "watch"]
    assert [r.text for r in watches] == ["-w /srv/oae14 -p wa -k suggested-watch"]
    assert watches[0].note == "11 files written in it"
    assert "/tmp/" not in "".join(rule_lines(text))
    assert "exit status 3" in text.splitlines()[1]


def test_budget_warnings_follow_the_rate() -> None:
    log = load(GOLDEN / "net.strace")
    assert log.duration is not None
    rules = propose(log, Options(budget=1e9)).rules
    assert not any(r.over_budget for r in rules)
    exec_rule = next(r for r in rules if r.category == "exec")
    assert exec_rule.rate == pytest.approx(exec_rule.records / log.duration)
    strict = propose(log, Options(budget=exec_rule.rate - 0.1)).rules
    flagged = {r.text for r in strict if r.over_budget}
    assert exec_rule.text in flagged
    assert all((r.rate or 0) > exec_rule.rate - 0.1 for r in strict if r.text in flagged)
    text = render(log, Proposal([], strict), Options(budget=exec_rule.rate - 0.1), "x")
    assert text.count("# WARNING: above the budget") == len(flagged)


def test_scoping_counts_only_the_program_and_adds_the_fields() -> None:
    log = load(GOLDEN / "shell.strace")
    scoped = propose(log, Options(exe="/usr/bin/mv", auid="0")).rules
    for rule in scoped:
        assert "-F exe=/usr/bin/mv -F auid=0 " in rule.text
    renames = [r for r in scoped if r.category == "file-rename"]
    assert renames[0].events == 1
    assert not [r for r in scoped if r.category == "file-chmod"]  # chmod ran, not mv
    watches = [r.text.split(" -F perm")[0] for r in scoped if r.category == "watch"]
    assert watches == [  # mv's rename only (the shell wrote the rest of the directory)
        "-a always,exit -S all -F path=/srv/oae14/conf.txt",
        "-a always,exit -S all -F path=/srv/oae14/out.txt",
    ]


def test_all_proposes_a_rule_for_every_syscall_seen() -> None:
    log = load(GOLDEN / "net.strace")
    rules = propose(log, Options(all=True)).rules
    text = "\n".join(r.text for r in rules)
    for call in log.calls:
        assert call.audit_name in text


X86_64 = sorted(syscall_table("x86_64").items())
I386 = sorted(syscall_table("i386").items())


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(0, 10_000), st.booleans(), st.integers(1, 3)),
        min_size=1,
        max_size=40,
    )
)
def test_any_log_gives_rules_that_parse_and_count_every_call(
    calls: list[tuple[bool, int, bool, int]],
) -> None:
    """Whatever calls a log holds (by number, either ABI, failed or not, several processes):
    every rule parses, each ABI's category rule counts exactly that ABI's calls of its
    category, and --all gives every call a rule."""
    lines = []
    for compat, pick, failed, pid in calls:
        table = I386 if compat else X86_64
        nr, name = table[pick % len(table)]
        result = "-1 EPERM (Operation not permitted)" if failed else "0"
        lines.append(f"{pid} 1700000000.{len(lines):06d} [{nr:4d}] {name}(0) = {result}")
    log = read_strace_log(lines, MACHINE)
    assert len(log.calls) == len(calls)
    for every in (False, True):
        proposal = propose(log, Options(all=every, budget=1e12))
        for rule in proposal.rules:
            parse_rule(rule.text, machine=MACHINE)
            assert not rule.over_budget
        for category, _, names in RULE_CATEGORIES:
            for abi in ("b64", "b32"):
                wanted = sum(1 for c in log.calls if c.abi == abi and c.audit_name in names)
                got = [r for r in proposal.rules if r.category == category and abi in r.text]
                assert sum(r.events for r in got) == wanted
        if every:
            text = "\n".join(r.text for r in proposal.rules)
            assert all(c.audit_name in text for c in log.calls if c.audit_name)


def test_scoping_values_a_rules_file_cannot_hold_are_refused() -> None:
    log = load(GOLDEN / "net.strace")
    with pytest.raises(RuleSyntaxError, match="exe '/opt/my prog': blanks cannot stand"):
        propose(log, Options(exe="/opt/my prog"))
    with pytest.raises(RuleSyntaxError, match="-F auid=nosuchuser_oaetest"):
        propose(log, Options(auid="nosuchuser_oaetest"))
