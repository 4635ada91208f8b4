"""The entry point: a bad config is one clear line before anything starts, wherever
--config is written."""

from __future__ import annotations

import pytest

from osquery_audit_ext.cli import main


@pytest.fixture
def bad_config(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('mode = "sideways"\n')
    return str(path)


@pytest.mark.parametrize(
    "argv",
    [
        ["shell", "--config", "{cfg}", "SELECT 1"],
        ["--config", "{cfg}", "shell", "SELECT 1"],
        ["packs", "check", "--config", "{cfg}", "packs/audit-health.conf"],
        ["packs", "--config", "{cfg}", "check", "packs/audit-health.conf"],
        ["daemon", "--socket", "/nonexistent-dir/x.em", "--config", "{cfg}"],
    ],
)
def test_bad_config_is_one_line_before_anything_starts(argv, bad_config, capsys):
    code = main([a.replace("{cfg}", bad_config) for a in argv])
    err = capsys.readouterr().err
    assert code == 1
    assert err == (
        f"osquery-audit-ext: {bad_config}: mode must be one of auto, unicast, multicast, "
        "got 'sideways'\n"
    )


def test_missing_named_config(capsys):
    assert main(["shell", "--config", "/nonexistent.toml", "SELECT 1"]) == 1
    assert (
        capsys.readouterr().err
        == "osquery-audit-ext: config file /nonexistent.toml does not exist\n"
    )
