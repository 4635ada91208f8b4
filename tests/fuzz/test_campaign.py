"""The fuzzing campaign: everything that parses input from outside the process, fed with
hypothesis-made input near the real shapes (and plain garbage).

Contract for each: no exception but the documented one (which the caller counts or reports
as one clear line). The normal suite runs a short campaign (60 examples a test); `make fuzz`
runs the same tests with FUZZ_EXAMPLES examples each (default 20,000 there).
"""

from __future__ import annotations

import json
import os
import random
import string
from dataclasses import fields

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from thrift.protocol.TBinaryProtocol import TBinaryProtocol
from thrift.transport.TTransport import TMemoryBuffer

from osquery_audit_ext.app.packs import parse_pack
from osquery_audit_ext.app.settings import (
    CONTROL_KEYS,
    EventSettings,
    ReaderSettings,
    RingSettings,
    Settings,
    settings_from_dict,
)
from osquery_audit_ext.app.state import StateSettings
from osquery_audit_ext.app.tables import EventTable
from osquery_audit_ext.audit.consts import (
    AUDIT_CWD,
    AUDIT_EOE,
    AUDIT_EXECVE,
    AUDIT_PATH,
    AUDIT_PROCTITLE,
    AUDIT_SOCKADDR,
    AUDIT_SYSCALL,
    AUDIT_USER,
)
from osquery_audit_ext.audit.control import AuditFeatures, AuditStatus
from osquery_audit_ext.audit.netlink import NLMSG_HDR, split_messages
from osquery_audit_ext.audit.rule.codec import decode_rule, encode_rule
from osquery_audit_ext.audit.rule.format import describe_rule, format_rule
from osquery_audit_ext.audit.rule.parse import parse_rule
from osquery_audit_ext.commands.status import parse_settings
from osquery_audit_ext.core import sql as sql_module
from osquery_audit_ext.core.tabledef import TableDef
from osquery_audit_ext.errors import AuditExtError, ConfigError
from osquery_audit_ext.events.coalesce import Coalescer
from osquery_audit_ext.events.records import RecordParseError, parse_record
from osquery_audit_ext.events.ring import EventRing
from osquery_audit_ext.events.routing import PROCESS_EVENTS, SOCKET_EVENTS, EventRouter
from osquery_audit_ext.events.rows import cut_row
from osquery_audit_ext.sdk._toml import toml
from osquery_audit_ext.sdk.osquery_thrift.Extension import call_result
from osquery_audit_ext.sdk.osquery_thrift.ttypes import ExtensionResponse, ExtensionStatus
from osquery_audit_ext.sdk.plugin import TEXT_FORM, ExtensionHandler
from osquery_audit_ext.sdk.tablespec import load_spec

SUPPRESS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
campaign = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=SUPPRESS,
)

# -- audit records ----------------------------------------------------------------------------

KEYS = (
    "arch syscall success exit a0 a1 a2 a3 items ppid pid auid uid gid euid suid fsuid egid "
    "sgid fsgid tty ses comm exe subj key argc a0_len a1[0] a1[1] item name inode dev mode "
    "ouid ogid rdev nametype cap_fp cwd saddr proctitle msg res op"
).split()
VALUES = st.one_of(
    st.sampled_from(
        [
            "c000003e",
            "40000003",
            "c00000b7",
            "59",
            "322",
            "42",
            "49",
            "43",
            "288",
            "102",
            "yes",
            "no",
            "-111",
            "-115",
            "0",
            "4294967295",
            "18446744073709551615",
            "-1",
            '"x"',
            '""',
            '"',
            "(null)",
            "(none)",
            "?",
            "0100755",
            "7FFF",
            "02000050" + "7F000001" + "0" * 16,
            "0A000050" + "0" * 48,
            "0100" + "2F746D702F73" + "00",
            "ZZ",
            "1",
            "99999999999999999999999",
        ]
    ),
    st.text(string.hexdigits, max_size=40),
    st.text(max_size=12),
)
TYPES = st.sampled_from(
    [
        AUDIT_SYSCALL,
        AUDIT_EXECVE,
        AUDIT_PATH,
        AUDIT_CWD,
        AUDIT_SOCKADDR,
        AUDIT_PROCTITLE,
        AUDIT_EOE,
        AUDIT_USER,
        1304,
        1305,
        1400,
        1107,
        2000,
    ]
)


@st.composite
def record_payloads(draw: st.DrawFn, serial: int) -> bytes:
    if draw(st.integers(0, 20)) == 0:
        return draw(st.binary(max_size=200))  # plain garbage now and then
    stamp = draw(
        st.sampled_from(
            [f"1700000000.123:{serial}", f"1700000000.999:{serial}", "x.1:2", f"1.1:{serial}"]
        )
    )
    fields = [
        f"{draw(st.sampled_from(KEYS))}={draw(VALUES)}" for _ in range(draw(st.integers(0, 14)))
    ]
    if draw(st.booleans()):  # the fixed start the fast path reads
        fields = [
            f"arch={draw(st.sampled_from(['c000003e', '40000003', 'zz']))}",
            f"syscall={draw(st.sampled_from(['59', '322', '42', '49', '43', '102', 'x']))}",
            f"success={draw(st.sampled_from(['yes', 'no']))}",
            f"exit={draw(VALUES)}",
            "a0=3 a1=7ffc a2=10 a3=0 items=1",
            f"ppid=1 pid={draw(st.sampled_from(['42', 'x', '-3', '']))}",
            *fields,
        ]
    text = f"audit({stamp}): " + " ".join(fields)
    return text.encode("utf-8", "surrogateescape") + draw(st.sampled_from([b"", b"\x00", b"\n"]))


@st.composite
def record_streams(draw: st.DrawFn) -> list[tuple[int, bytes]]:
    stream = []
    serial = draw(st.integers(0, 2**32 - 1))
    for _ in range(draw(st.integers(1, 12))):
        serial = (serial + draw(st.integers(0, 3))) % 2**32
        for _ in range(draw(st.integers(1, 6))):
            stream.append((draw(TYPES), draw(record_payloads(serial))))
    return stream


def fresh_router() -> tuple[EventRouter, EventRing, EventRing]:
    process, socket = EventRing(1000, 0), EventRing(1000, 0)
    return EventRouter(process, socket, 0.0, drop_unix_key="k"), process, socket


@campaign
@given(record_streams())
def test_record_streams_never_break_the_pipeline(stream):
    """Records -> events -> routing -> ring -> rows: a bad record is a counted parse error,
    anything else becomes a row or nothing."""
    router, process, socket = fresh_router()
    coalescer = Coalescer(timeout=1.0, max_inflight=8)
    for msg_type, payload in stream:
        try:
            parse_record(msg_type, payload)
        except RecordParseError:
            pass
        try:
            done = coalescer.add(msg_type, payload, 0.0)
        except RecordParseError:
            continue
        router.route(done)
    router.route(coalescer.flush())
    for table, ring in ((PROCESS_EVENTS, process), (SOCKET_EVENTS, socket)):
        build = router.builder(table)
        items = [item for _eid, _when, _pid, item in ring.query()]
        one_by_one = [build(item) for item in items]
        assert None not in one_by_one  # the ring never keeps an entry that gives no row
        # The batched builders (compiled where built, rows.py's loops else) give the same rows.
        columns = [c for c in load_spec(table).column_names if c not in ("eid", "consumer")]
        assert build.rows(items, columns, None) == [cut_row(r, columns) for r in one_by_one]
        assert build.rows(items, columns, TEXT_FORM) == [
            cut_row(r, columns, TEXT_FORM) for r in one_by_one
        ]


# -- netlink ----------------------------------------------------------------------------------


@st.composite
def datagrams(draw: st.DrawFn) -> bytes:
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        payload = draw(st.binary(max_size=64))
        length = 16 + len(payload) + draw(st.sampled_from([0, 0, 0, -1, 1, -20, 1000]))
        header = NLMSG_HDR.pack(max(0, min(length, 2**32 - 1)), draw(st.integers(0, 2000)), 0, 0, 0)
        parts.append(header + payload + b"\0" * draw(st.integers(0, 3)))
    return b"".join(parts) + draw(st.binary(max_size=draw(st.sampled_from([0, 0, 20]))))


@campaign
@given(datagrams())
def test_netlink_datagrams_split_or_fail_clearly(data):
    try:
        messages = split_messages(data)
    except AuditExtError:
        return
    for msg_type, _flags, _seq, payload in messages:
        assert 0 <= msg_type < 2**16 and isinstance(payload, bytes)


@campaign
@given(st.binary(max_size=80))
def test_kernel_status_and_features_decode_or_fail_clearly(payload):
    for decode in (AuditStatus.decode, AuditFeatures.decode):
        try:
            decode(payload)
        except AuditExtError:
            pass


@campaign
@given(st.binary(max_size=1200))
def test_kernel_rule_data_decodes_or_fails_clearly(data):
    try:
        rule = decode_rule(data)
    except AuditExtError:
        return
    format_rule(rule)
    describe_rule(rule)


# -- rule text --------------------------------------------------------------------------------

RULE_TOKENS = [
    *(
        "-a -A -d -D -w -W -p -k -S -F -C -l -s -e -b -r -f --backlog_wait_time always never "
        "exit task user exclude filesystem io_uring always,exit exit,always never,task arch=b64 "
        "arch=b32 arch=x86_64 arch=foo execve,execveat all open 59 999 -1 uid=0 auid>=1000 "
        "auid!=4294967295 auid!=-1 path=/etc exit=-EPERM exit=-13 success=1 key=x dir=/tmp "
        "perm=wa filetype=file saddr_fam!=1 inode=12 obj_user=x uid!=euid wa rwxa /etc/shadow "
        "x" * 300
    ).split(),
    "",
    " ",
    "=",
    "-F",
    "a=b=c",
    "-k",
    "\x00",
    "é",
    "\u202e",
]


@campaign
@given(st.lists(st.sampled_from(RULE_TOKENS) | st.text(max_size=10), max_size=10))
def test_rule_text_parses_or_is_one_clear_error(tokens):
    text = " ".join(tokens)
    for argument in (text, tokens):
        try:
            command = parse_rule(argument, machine="x86_64")
        except AuditExtError as exc:
            assert str(exc) and "\n" not in str(exc).strip()
            continue
        if command.rule is not None and command.op in ("add", "prepend", "delete"):
            try:
                data = encode_rule(command.rule)
            except AuditExtError:
                continue
            format_rule(decode_rule(data))


# -- configuration, packs, command lines ------------------------------------------------------

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=15,
)
# Every key the config knows (top level and in each table), so documents get near the shape.
CONFIG_KEYS = st.sampled_from(
    sorted(
        {f.name for f in fields(Settings)}
        | {
            f.name
            for section in (EventSettings, RingSettings, ReaderSettings, StateSettings)
            for f in fields(section)
        }
        | set(CONTROL_KEYS)
    )
)
CONFIG_DOCS = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 2**33) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(CONFIG_KEYS, inner, max_size=5),
    max_leaves=12,
)


@campaign
@given(st.dictionaries(CONFIG_KEYS, CONFIG_DOCS, max_size=6))
def test_config_documents_load_or_name_the_problem(document):
    try:
        settings_from_dict(document, "fuzz.toml")
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.toml")


@campaign
@given(st.text(max_size=200))
def test_config_text_is_valid_toml_or_one_error(text):
    try:
        data = toml.loads(text)
    except toml.TOMLDecodeError:
        return
    try:
        settings_from_dict(data, "fuzz.toml")
    except ConfigError:
        pass


@campaign
@given(
    st.dictionaries(
        st.sampled_from(
            ["queries", "platform", "discovery", "version", "shard", "interval", "query", "x"]
        ),
        JSONISH,
        max_size=5,
    )
    | JSONISH
)
def test_packs_are_checked_never_raise(document):
    for text in (json.dumps(document), json.dumps(document)[:-1]):
        pack, problems = parse_pack("fuzz.conf", text)
        assert pack is not None or problems
        assert all(isinstance(p, str) and p.startswith("fuzz.conf") for p in problems)


@campaign
@given(
    st.lists(
        st.text(max_size=20) | st.sampled_from(["enabled=2", "backlog_limit=1", "x=1"]), max_size=4
    )
)
def test_status_settings_parse_or_name_the_problem(texts):
    try:
        parse_settings(texts)
    except ConfigError as exc:
        assert str(exc)


# -- generate contexts (osquery core -> extension) --------------------------------------------

OPS = st.sampled_from([2, 4, 8, 16, 32, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 0, -1])
EXPRS = st.sampled_from(
    [
        "1",
        "0",
        "-1",
        "99999999999999999999",
        "1e3",
        "",
        "abc",
        "0x10",
        "0000000001",
        " 5",
        "1.5",
        "nan",
        "inf",
        "-0",
        "١٢",
    ]
) | st.text(max_size=6)


@st.composite
def contexts(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 10)) == 0:
        return draw(st.text(max_size=60))
    constraints = [
        {
            "name": draw(st.sampled_from(["eid", "time", "pid", "uid", "path", "x"])),
            "affinity": draw(st.sampled_from(["INTEGER", "TEXT", "BIGINT", 5])),
            "list": [
                {"op": draw(OPS), "expr": draw(EXPRS)} for _ in range(draw(st.integers(0, 3)))
            ],
        }
        for _ in range(draw(st.integers(0, 3)))
    ]
    doc: dict = {"constraints": constraints}
    if draw(st.booleans()):
        doc["colsUsed"] = draw(
            st.lists(st.sampled_from(["eid", "time", "pid", "cmdline", "path"]), max_size=4)
        )
    if draw(st.booleans()):
        doc["colsUsedBitset"] = draw(st.integers(0, 2**40))
    return json.dumps(doc)


def event_tables() -> ExtensionHandler:
    """Both event tables over rings holding a few exec events."""
    router, process, _socket = fresh_router()
    rng = random.Random(7)
    for n in range(50):
        head = f"audit(1700000000.{n:03d}:{100 + n}): "
        syscall = (
            "arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=4 items=0 ppid=1 "
            f'pid={rng.randint(1, 9)} auid=0 uid=0 comm="x" exe="/bin/x" key="k"'
        )
        process.append(1700000000 + n, n % 9, ((AUDIT_SYSCALL,), ((head + syscall).encode(),)))
    tables = [EventTable(name, ring, router.builder(name)) for name, ring in router.rings().items()]
    return ExtensionHandler(tables)


HANDLER = event_tables()


@campaign
@given(contexts(), st.sampled_from([PROCESS_EVENTS, SOCKET_EVENTS]))
def test_generate_contexts_give_rows_or_a_clear_failure(context, table):
    response = HANDLER.call("table", table, {"action": "generate", "context": context})
    try:
        json.loads(context)
        well_formed = isinstance(json.loads(context), dict)
    except ValueError:
        well_formed = False
    if well_formed and response.status.code != 0:
        # A JSON object of the shape core sends: only a clear shape complaint may fail it.
        assert response.status.message.startswith("invalid generate context"), (
            response.status.message
        )
    assert response.status.code in (0, 1)


# -- generate replies (extension -> core) -----------------------------------------------------

REPLY_COLUMNS = [("name", "TEXT"), ("pid", "BIGINT"), ("ok", "INTEGER"), ("d", "DOUBLE")]
REPLY_DEFINITION = TableDef.from_routes(
    "t",
    [{"id": "column", "name": name, "type": ctype, "op": "0"} for name, ctype in REPLY_COLUMNS],
    is_extension=True,
)


@st.composite
def generate_replies(draw: st.DrawFn) -> bytes:
    """A call_result as thrift writes it, then bytes overwritten, cut or appended; or garbage."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=300))
    keys = st.sampled_from([name for name, _ in REPLY_COLUMNS] + ["rowid", "x"])
    rows = draw(st.lists(st.dictionaries(keys, st.text(max_size=4)), max_size=4))
    response = ExtensionResponse(ExtensionStatus(0, "OK", 1), rows)
    buffer = TMemoryBuffer()
    call_result(success=response).write(TBinaryProtocol(buffer))
    reply = bytearray(buffer.getvalue())
    at = draw(st.integers(0, len(reply)))
    reply[at : at + 8] = draw(st.binary(max_size=8))
    return bytes(reply) + draw(st.binary(max_size=8))


@campaign
@given(generate_replies(), st.integers(1, 16))
def test_generate_replies_read_as_rows_or_one_clear_error(reply, chunk):
    """The core's typed-reply decoder (core/_sqlfast.c reply_rows, where built) gives rows,
    or raises its one error ("malformed reply: ...") or the transport's end of stream."""
    if sql_module._sqlfast is None:
        return
    chunks = [reply[i : i + chunk] for i in range(0, len(reply), chunk)]

    def read(_n: int) -> bytes:
        if not chunks:
            raise EOFError("end of stream")
        return chunks.pop(0)

    plan = sql_module._column_plan(REPLY_DEFINITION, None)
    try:
        sql_module._sqlfast.reply_rows(plan, read)
    except ValueError as exc:
        assert str(exc).startswith("malformed reply: "), exc
    except EOFError:
        pass
