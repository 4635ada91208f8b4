"""Names, ids, operators, lists and actions of audit rules, and where each field is valid.

Data only. Ids and operator bits are the kernel's (include/uapi/linux/audit.h); names and
symbolic values are libaudit 3.0.9's, the library behind auditctl (tests/audit/rule/
test_tables.py checks every table here against libaudit itself); the long message-type and
errno name tables are generated from libaudit (audit/names/). Lookups by name are
case-insensitive, as in libaudit, so the name dictionaries are keyed in lower case where noted.
"""

from __future__ import annotations

from .. import names
from ..consts import AF_MAX as AF_MAX  # saddr_fam must be below it
from ..consts import UNSET_ID

# -- filter lists (audit_rule_data.flags) and actions ------------------------------------

LIST_USER = 0
LIST_TASK = 1
LIST_EXIT = 4
LIST_EXCLUDE = 5
LIST_FILESYSTEM = 6
LIST_IO_URING = 7
FILTER_PREPEND = 0x10  # flag bit: add at the head of the list (-A)
FILTER_LIST_MASK = 0x07

LIST_NAMES: dict[int, str] = {
    LIST_USER: "user",
    LIST_TASK: "task",
    LIST_EXIT: "exit",
    LIST_EXCLUDE: "exclude",
    LIST_FILESYSTEM: "filesystem",
    LIST_IO_URING: "io_uring",  # libaudit 3.0.9 has no name for it; newer versions do
}
LISTS: dict[str, int] = {name: number for number, name in LIST_NAMES.items()}
# Lists whose rules take no -S (auditctl still sends them with every syscall bit set,
# except task, which gets an empty mask).
LISTS_WITHOUT_SYSCALLS = frozenset({LIST_USER, LIST_TASK, LIST_EXCLUDE, LIST_FILESYSTEM})

ACTION_NEVER = 0
ACTION_POSSIBLE = 1  # deprecated: auditctl and the kernel refuse it
ACTION_ALWAYS = 2
ACTION_NAMES: dict[int, str] = {ACTION_NEVER: "never", ACTION_ALWAYS: "always"}
ACTIONS: dict[str, int] = {name: number for number, name in ACTION_NAMES.items()}

# -- operators (audit_rule_data.fieldflags) ----------------------------------------------

OP_BITMASK = 0x08000000  # &
OP_LESS_THAN = 0x10000000  # <
OP_GREATER_THAN = 0x20000000  # >
OP_NOT_EQUAL = 0x30000000  # !=
OP_EQUAL = 0x40000000  # =
OP_BITTEST = 0x48000000  # &=
OP_LESS_THAN_OR_EQUAL = 0x50000000  # <=
OP_GREATER_THAN_OR_EQUAL = 0x60000000  # >=
OPERATOR_BITS = 0x78000000

# In the order auditctl looks for them in `name<op>value`: two-character operators first.
OPERATORS: dict[str, int] = {
    "!=": OP_NOT_EQUAL,
    ">=": OP_GREATER_THAN_OR_EQUAL,
    "<=": OP_LESS_THAN_OR_EQUAL,
    "&=": OP_BITTEST,
    "=": OP_EQUAL,
    ">": OP_GREATER_THAN,
    "<": OP_LESS_THAN,
    "&": OP_BITMASK,
}
OPERATOR_SYMBOLS: dict[int, str] = {value: symbol for symbol, value in OPERATORS.items()}
BIT_OPERATORS = frozenset({OP_BITMASK, OP_BITTEST})
EQUALITY_OPERATORS = frozenset({OP_EQUAL, OP_NOT_EQUAL})

# -- field ids ---------------------------------------------------------------------------

PID = 0
UID = 1
EUID = 2
SUID = 3
FSUID = 4
GID = 5
EGID = 6
SGID = 7
FSGID = 8
LOGINUID = 9
PERS = 10
ARCH = 11
MSGTYPE = 12
SUBJ_USER = 13
SUBJ_ROLE = 14
SUBJ_TYPE = 15
SUBJ_SEN = 16
SUBJ_CLR = 17
PPID = 18
OBJ_USER = 19
OBJ_ROLE = 20
OBJ_TYPE = 21
OBJ_LEV_LOW = 22
OBJ_LEV_HIGH = 23
LOGINUID_SET = 24
SESSIONID = 25
FSTYPE = 26
DEVMAJOR = 100
DEVMINOR = 101
INODE = 102
EXIT = 103
SUCCESS = 104
WATCH = 105  # path=
PERM = 106
DIR = 107
FILETYPE = 108
OBJ_UID = 109
OBJ_GID = 110
FIELD_COMPARE = 111
EXE = 112
SADDR_FAM = 113
ARG0 = 200
ARG1 = 201
ARG2 = 202
ARG3 = 203
FILTERKEY = 210  # key=

# Canonical names, as `auditctl -l` prints them (LOGINUID_SET has no name: the kernel turns
# auid=unset into it and lists it back as auid=-1).
FIELD_NAMES: dict[int, str] = {
    PID: "pid",
    UID: "uid",
    EUID: "euid",
    SUID: "suid",
    FSUID: "fsuid",
    GID: "gid",
    EGID: "egid",
    SGID: "sgid",
    FSGID: "fsgid",
    LOGINUID: "auid",
    PERS: "pers",
    ARCH: "arch",
    MSGTYPE: "msgtype",
    SUBJ_USER: "subj_user",
    SUBJ_ROLE: "subj_role",
    SUBJ_TYPE: "subj_type",
    SUBJ_SEN: "subj_sen",
    SUBJ_CLR: "subj_clr",
    PPID: "ppid",
    OBJ_USER: "obj_user",
    OBJ_ROLE: "obj_role",
    OBJ_TYPE: "obj_type",
    OBJ_LEV_LOW: "obj_lev_low",
    OBJ_LEV_HIGH: "obj_lev_high",
    SESSIONID: "sessionid",
    FSTYPE: "fstype",
    DEVMAJOR: "devmajor",
    DEVMINOR: "devminor",
    INODE: "inode",
    EXIT: "exit",
    SUCCESS: "success",
    WATCH: "path",
    PERM: "perm",
    DIR: "dir",
    FILETYPE: "filetype",
    OBJ_UID: "obj_uid",
    OBJ_GID: "obj_gid",
    FIELD_COMPARE: "field_compare",
    EXE: "exe",
    SADDR_FAM: "saddr_fam",
    ARG0: "a0",
    ARG1: "a1",
    ARG2: "a2",
    ARG3: "a3",
    FILTERKEY: "key",
}
# Lower-case name -> id, with libaudit's alias loginuid for auid.
FIELD_IDS: dict[str, int] = {name: number for number, name in FIELD_NAMES.items()}
FIELD_IDS["loginuid"] = LOGINUID

# -- value kinds -------------------------------------------------------------------------

UID_FIELDS = frozenset({UID, EUID, SUID, FSUID, LOGINUID, OBJ_UID})
GID_FIELDS = frozenset({GID, EGID, SGID, FSGID, OBJ_GID})
LSM_FIELDS = frozenset(
    {SUBJ_USER, SUBJ_ROLE, SUBJ_TYPE, SUBJ_SEN, SUBJ_CLR}
    | {OBJ_USER, OBJ_ROLE, OBJ_TYPE, OBJ_LEV_LOW, OBJ_LEV_HIGH}
)
# Fields whose value is a string carried in audit_rule_data.buf (values[i] holds its length).
STRING_FIELDS = LSM_FIELDS | {WATCH, DIR, EXE, FILTERKEY}
ARG_FIELDS = frozenset({ARG0, ARG1, ARG2, ARG3})  # listed in hex
UNSIGNED_FIELDS = frozenset({INODE})  # listed unsigned; everything else signed decimal
UNSET = UNSET_ID  # "unset" / -1 for ids
UNSETTABLE_FIELDS = UID_FIELDS | {SESSIONID}  # take the word `unset`

# -- where fields are valid (auditctl's checks, and the kernel's audit_field_valid) ------

# Only on the exit list.
EXIT_ONLY_FIELDS = frozenset(
    {EXIT, WATCH, DIR, PERM, DEVMAJOR, DEVMINOR, INODE, SUCCESS, FILETYPE, PPID}
    | {OBJ_USER, OBJ_ROLE, OBJ_TYPE, OBJ_LEV_LOW, OBJ_LEV_HIGH, FIELD_COMPARE}
)
MSGTYPE_LISTS = frozenset({LIST_EXCLUDE, LIST_USER})
SESSIONID_LISTS = frozenset({LIST_EXCLUDE, LIST_USER, LIST_EXIT})
EXCLUDE_FIELDS = frozenset(
    {PID, UID, GID, LOGINUID, MSGTYPE, EXE, SUBJ_USER, SUBJ_ROLE, SUBJ_TYPE, SUBJ_SEN, SUBJ_CLR}
)
FILESYSTEM_FIELDS = frozenset({FSTYPE, FILTERKEY})
# The kernel accepts every operator on these; on all others no bit operator (& &=) ...
ANY_OPERATOR_FIELDS = frozenset({ARG0, ARG1, ARG2, ARG3, PERS, DEVMINOR})
# ... and on these only = and != (inode: auditctl's rule).
EQUALITY_ONLY_FIELDS = frozenset(
    {SUBJ_USER, SUBJ_ROLE, SUBJ_TYPE, OBJ_USER, OBJ_ROLE, OBJ_TYPE, WATCH, DIR, FILTERKEY}
    | {LOGINUID_SET, ARCH, FSTYPE, PERM, FILETYPE, FIELD_COMPARE, EXE, INODE}
)

# -- symbolic values ---------------------------------------------------------------------

PERM_READ = 4
PERM_WRITE = 2
PERM_EXEC = 1
PERM_ATTR = 8
# In the order auditctl prints them.
PERM_LETTERS: dict[str, int] = {"r": PERM_READ, "w": PERM_WRITE, "x": PERM_EXEC, "a": PERM_ATTR}

# -C pairs: value of field_compare -> (left, right) as `auditctl -l` prints it. Either order
# parses to the same value.
COMPARISONS: dict[int, tuple[str, str]] = {
    1: ("uid", "obj_uid"),
    2: ("gid", "obj_gid"),
    3: ("euid", "obj_uid"),
    4: ("egid", "obj_gid"),
    5: ("auid", "obj_uid"),
    6: ("suid", "obj_uid"),
    7: ("sgid", "obj_gid"),
    8: ("fsuid", "obj_uid"),
    9: ("fsgid", "obj_gid"),
    10: ("uid", "auid"),
    11: ("uid", "euid"),
    12: ("uid", "fsuid"),
    13: ("uid", "suid"),
    14: ("auid", "fsuid"),
    15: ("auid", "suid"),
    16: ("auid", "euid"),
    17: ("euid", "suid"),
    18: ("euid", "fsuid"),
    19: ("suid", "fsuid"),
    20: ("gid", "egid"),
    21: ("gid", "fsgid"),
    22: ("gid", "sgid"),
    23: ("egid", "fsgid"),
    24: ("egid", "sgid"),
    25: ("sgid", "fsgid"),
}

# filetype= values (lower-case name -> S_IFMT bits).
FILE_TYPES: dict[str, int] = {
    "fifo": 0o010000,
    "character": 0o020000,
    "dir": 0o040000,
    "block": 0o060000,
    "file": 0o100000,
    "link": 0o120000,
    "socket": 0o140000,
}

# fstype= values (lower-case name -> filesystem magic).
FS_TYPES: dict[str, int] = {"debugfs": 0x64626720, "tracefs": 0x74726163}

# -- limits ------------------------------------------------------------------------------

MAX_FIELDS = 64  # the kernel's AUDIT_MAX_FIELDS
MAX_RULE_FIELDS = 63  # auditctl refuses a 64th field (the key counts)
MAX_KEY_LEN = 256  # all keys of a rule, joined by KEY_SEPARATOR
KEY_SEPARATOR = "\x01"
PATH_MAX = 4096
NAME_MAX = 255
BITMASK_WORDS = 64  # u32 words of the syscall mask
SYSCALL_BITS = BITMASK_WORDS * 32
SYSCALL_CLASSES = 16  # the mask's top bits select kernel syscall classes, not syscalls

# msgtype= values: number -> name, and exit= errno names: number -> the name auditctl
# prints, plus the further (upper-case) names it accepts. Generated from libaudit: see
# audit/names/ (lookups by name are case-insensitive for msgtype).
MESSAGE_TYPES: dict[int, str] = names.message_types()
ERRNO_NAMES: dict[int, str] = names.errno_names()
ERRNO_ALIASES: dict[str, int] = names.errno_aliases()
