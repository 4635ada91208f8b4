"""Settings: the documented config contract loads, and every bad key or value is named."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from osquery_audit_ext.app.settings import CONFIG_ENV, Settings, load_settings, settings_from_dict
from osquery_audit_ext.errors import ConfigError
from osquery_audit_ext.sdk._toml import toml

CONTRACT = """
mode = "auto"
rules = ["-w /etc/shadow -p wa -k shadow"]
[events]
process = true
sockets = false
socket_accept = true
socket_unix = false
socket_failed = false
[ring]
capacity = 100000
expiry = 3600
[control]
backlog_limit = 8192
"""


def test_documented_contract_loads(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(CONTRACT)
    s = load_settings(str(path))
    assert s.mode == "auto"
    assert s.rules == ("-w /etc/shadow -p wa -k shadow",)
    assert s.events.process and not s.events.sockets and s.events.socket_accept
    assert s.ring.capacity == 100000 and s.ring.expiry == 3600
    assert s.control == {"backlog_limit": 8192}
    assert s.source == str(path)


def test_defaults_match_osquery_flags():
    s = Settings()
    assert (s.events.process, s.events.sockets, s.events.socket_accept) == (True, False, True)
    assert (s.events.socket_unix, s.events.socket_failed) == (False, False)
    assert s.ring.expiry == 3600 and s.control == {} and not s.persist_rules
    assert s.raise_backlog_limit == 8192
    assert settings_from_dict({"raise_backlog_limit": 0}).raise_backlog_limit == 0
    # audit_allow_user_events is true; fim, its accesses, seccomp, selinux, apparmor false
    assert s.events.user and not (s.events.fim or s.events.fim_accesses)
    assert not (s.events.seccomp or s.events.selinux or s.events.apparmor)


def test_file_paths_as_osquery_configures_them():
    s = settings_from_dict(
        {"events": {"fim": True}, "file_paths": {"etc": ["/etc/%%"], "ssh": ["/home/%/.ssh/%"]}}
    )
    assert s.events.fim and s.file_paths == {"etc": ("/etc/%%",), "ssh": ("/home/%/.ssh/%",)}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"modee": "auto"}, "unknown key 'modee'"),
        ({"mode": "both"}, "mode must be one of"),
        ({"rules": "-w /etc/shadow"}, "rules must be a list"),
        ({"events": {"proces": True}}, "events: unknown key 'proces'"),
        ({"events": {"process": "yes"}}, "events.process: expected true or false"),
        ({"ring": {"capacity": -1}}, "ring.capacity: expected a non-negative integer"),
        ({"ring": {"capacity": True}}, "ring.capacity: expected a non-negative integer"),
        ({"control": {"backlog": 5}}, "control: unknown key 'backlog'"),
        ({"control": {"failure": 3}}, "control.failure: expected an integer 0..2"),
        ({"reader": {"event_timeout": 0}}, "reader.event_timeout: expected a positive number"),
        ({"key": ""}, "key: must be 1 to 255 bytes"),
        ({"raise_backlog_limit": -1}, "raise_backlog_limit: expected a non-negative integer"),
        ({"ring": {"capacity": 0}}, "ring.capacity: the ring must hold at least 1 event"),
        ({"file_paths": ["/etc/%%"]}, "file_paths: expected a table: category = list of globs"),
        ({"file_paths": {"etc": "/etc/%%"}}, "file_paths.etc: expected a list of path globs"),
        ({"file_paths": {"etc": ["etc/%%"]}}, "file_paths.etc: 'etc/%%' is not an absolute"),
        ({"events": {"fim": True}}, "events.fim: file_paths names no paths to watch"),
        ({"events": {"seccomp": 1}}, "events.seccomp: expected true or false"),
    ],
)
def test_bad_values_are_named(data, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        settings_from_dict(data, "cfg.toml")


def test_named_file_must_exist(tmp_path, monkeypatch):
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(str(tmp_path / "missing.toml"))


def test_env_var_names_the_file(tmp_path, monkeypatch):
    path = tmp_path / "env.toml"
    path.write_text('mode = "multicast"\n')
    monkeypatch.setenv(CONFIG_ENV, str(path))
    assert load_settings().mode == "multicast"
    assert load_settings(None).source == str(path)


def test_invalid_toml_is_one_clear_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("mode = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(str(path))


def test_control_keys_come_from_the_audit_settings():
    """[control] takes every AUDIT_SET field but pid, with audit/control.py's ranges."""
    from osquery_audit_ext.app.settings import CONTROL_KEYS, CONTROL_RANGES
    from osquery_audit_ext.audit.control import SETTINGS
    from osquery_audit_ext.commands.status import CLI_SETTINGS

    u32 = 2**32 - 1
    assert CONTROL_RANGES == {
        "enabled": (0, 2),
        "failure": (0, 2),
        "backlog_limit": (0, u32),
        "rate_limit": (0, u32),
        "backlog_wait_time": (0, u32),
    }
    assert set(CONTROL_KEYS) == set(SETTINGS) - {"pid"}
    assert CLI_SETTINGS == (
        "enabled",
        "failure",
        "rate_limit",
        "backlog_limit",
        "backlog_wait_time",
    )


def test_readme_config_block_names_every_setting():
    """The README's example config documents every key the settings accept."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Configuration") :]
    block = section[
        section.index("```toml\n") + 8 : section.index("```\n", section.index("```toml"))
    ]
    data = toml.loads(block)
    top = {f.name for f in dataclasses.fields(Settings)} - {"source"}
    assert set(data) == top
    for name in ("events", "ring", "reader", "state"):
        expected = {f.name for f in dataclasses.fields(getattr(Settings(), name))}
        assert set(data[name]) == expected, name
    settings_from_dict(data)  # and it is a valid config
