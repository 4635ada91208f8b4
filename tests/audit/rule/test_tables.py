"""The data in rule/fields.py against libaudit itself (the library auditctl uses), via ctypes."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno

import pytest

from osquery_audit_ext.audit.rule import fields as F


@pytest.fixture(scope="module")
def libaudit() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("audit") or "libaudit.so.1")
    except OSError:
        pytest.skip("libaudit is not installed (Debian package libaudit1)")
    for name in (
        "audit_msg_type_to_name",
        "audit_errno_to_name",
        "audit_field_to_name",
        "audit_ftype_to_name",
        "audit_fstype_to_name",
        "audit_flag_to_name",
        "audit_action_to_name",
        "audit_operator_to_symbol",
    ):
        getattr(lib, name).restype = ctypes.c_char_p
    return lib


def text(value: bytes | None) -> str | None:
    return value.decode() if value is not None else None


def test_message_types(libaudit: ctypes.CDLL) -> None:
    known = {
        n: text(libaudit.audit_msg_type_to_name(n))
        for n in range(0, 10000)
        if libaudit.audit_msg_type_to_name(n)
    }
    assert known == F.MESSAGE_TYPES
    for number, name in F.MESSAGE_TYPES.items():
        assert libaudit.audit_name_to_msg_type(name.lower().encode()) == number


def test_errno_names(libaudit: ctypes.CDLL) -> None:
    known = {
        n: text(libaudit.audit_errno_to_name(n))
        for n in range(0, 4096)
        if libaudit.audit_errno_to_name(n)
    }
    assert known == F.ERRNO_NAMES
    for name, number in F.ERRNO_ALIASES.items():
        assert libaudit.audit_name_to_errno(name.encode()) == number
    # Every name Python knows that libaudit takes is in one of the two tables.
    for name in dir(errno):
        if name.startswith("E") and libaudit.audit_name_to_errno(name.encode()):
            assert name in F.ERRNO_NAMES.values() or name in F.ERRNO_ALIASES


def test_field_names(libaudit: ctypes.CDLL) -> None:
    known = {
        n: text(libaudit.audit_field_to_name(n))
        for n in range(0, 512)
        if libaudit.audit_field_to_name(n)
    }
    assert known == F.FIELD_NAMES
    for name, number in F.FIELD_IDS.items():
        assert libaudit.audit_name_to_field(name.upper().encode()) == number


def test_file_and_filesystem_types(libaudit: ctypes.CDLL) -> None:
    for name, mode in F.FILE_TYPES.items():
        assert libaudit.audit_name_to_ftype(name.encode()) == mode
        assert text(libaudit.audit_ftype_to_name(mode)) == name
    for name, magic in F.FS_TYPES.items():
        assert libaudit.audit_name_to_fstype(name.encode()) & 0xFFFFFFFF == magic
        assert text(libaudit.audit_fstype_to_name(magic)) == name


def test_lists_actions_operators(libaudit: ctypes.CDLL) -> None:
    for number, name in F.LIST_NAMES.items():
        if number != F.LIST_IO_URING:  # no name in libaudit 3.0.9
            assert text(libaudit.audit_flag_to_name(number)) == name
    for number, name in F.ACTION_NAMES.items():
        assert text(libaudit.audit_action_to_name(number)) == name
    for value, symbol in F.OPERATOR_SYMBOLS.items():
        assert text(libaudit.audit_operator_to_symbol(value)) == symbol
