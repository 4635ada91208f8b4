"""Names, ids, operators, lists and actions of audit rules, and where each field is valid.

Data only. Ids and operator bits are the kernel's (include/uapi/linux/audit.h); names and
symbolic values are libaudit 3.0.9's, the library behind auditctl (tests/test_rule_tables.py
checks every table here against libaudit itself). Lookups by name are case-insensitive, as
in libaudit, so the name dictionaries are keyed in lower case where noted.
"""

from __future__ import annotations

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
UNSET = 0xFFFFFFFF  # "unset" / -1 for ids
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

AF_MAX = 46  # saddr_fam must be below it

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

# msgtype= values: number -> name (lookups by name are case-insensitive).
MESSAGE_TYPES: dict[int, str] = {
    1005: "USER",
    1006: "LOGIN",
    1100: "USER_AUTH",
    1101: "USER_ACCT",
    1102: "USER_MGMT",
    1103: "CRED_ACQ",
    1104: "CRED_DISP",
    1105: "USER_START",
    1106: "USER_END",
    1107: "USER_AVC",
    1108: "USER_CHAUTHTOK",
    1109: "USER_ERR",
    1110: "CRED_REFR",
    1111: "USYS_CONFIG",
    1112: "USER_LOGIN",
    1113: "USER_LOGOUT",
    1114: "ADD_USER",
    1115: "DEL_USER",
    1116: "ADD_GROUP",
    1117: "DEL_GROUP",
    1118: "DAC_CHECK",
    1119: "CHGRP_ID",
    1120: "TEST",
    1121: "TRUSTED_APP",
    1122: "USER_SELINUX_ERR",
    1123: "USER_CMD",
    1124: "USER_TTY",
    1125: "CHUSER_ID",
    1126: "GRP_AUTH",
    1127: "SYSTEM_BOOT",
    1128: "SYSTEM_SHUTDOWN",
    1129: "SYSTEM_RUNLEVEL",
    1130: "SERVICE_START",
    1131: "SERVICE_STOP",
    1132: "GRP_MGMT",
    1133: "GRP_CHAUTHTOK",
    1134: "MAC_CHECK",
    1135: "ACCT_LOCK",
    1136: "ACCT_UNLOCK",
    1137: "USER_DEVICE",
    1138: "SOFTWARE_UPDATE",
    1200: "DAEMON_START",
    1201: "DAEMON_END",
    1202: "DAEMON_ABORT",
    1203: "DAEMON_CONFIG",
    1205: "DAEMON_ROTATE",
    1206: "DAEMON_RESUME",
    1207: "DAEMON_ACCEPT",
    1208: "DAEMON_CLOSE",
    1209: "DAEMON_ERR",
    1300: "SYSCALL",
    1302: "PATH",
    1303: "IPC",
    1304: "SOCKETCALL",
    1305: "CONFIG_CHANGE",
    1306: "SOCKADDR",
    1307: "CWD",
    1309: "EXECVE",
    1311: "IPC_SET_PERM",
    1312: "MQ_OPEN",
    1313: "MQ_SENDRECV",
    1314: "MQ_NOTIFY",
    1315: "MQ_GETSETATTR",
    1316: "KERNEL_OTHER",
    1317: "FD_PAIR",
    1318: "OBJ_PID",
    1319: "TTY",
    1320: "EOE",
    1321: "BPRM_FCAPS",
    1322: "CAPSET",
    1323: "MMAP",
    1324: "NETFILTER_PKT",
    1325: "NETFILTER_CFG",
    1326: "SECCOMP",
    1327: "PROCTITLE",
    1328: "FEATURE_CHANGE",
    1330: "KERN_MODULE",
    1331: "FANOTIFY",
    1332: "TIME_INJOFFSET",
    1333: "TIME_ADJNTPVAL",
    1334: "BPF",
    1335: "EVENT_LISTENER",
    1336: "URINGOP",
    1337: "OPENAT2",
    1400: "AVC",
    1401: "SELINUX_ERR",
    1402: "AVC_PATH",
    1403: "MAC_POLICY_LOAD",
    1404: "MAC_STATUS",
    1405: "MAC_CONFIG_CHANGE",
    1406: "MAC_UNLBL_ALLOW",
    1407: "MAC_CIPSOV4_ADD",
    1408: "MAC_CIPSOV4_DEL",
    1409: "MAC_MAP_ADD",
    1410: "MAC_MAP_DEL",
    1411: "MAC_IPSEC_ADDSA",
    1412: "MAC_IPSEC_DELSA",
    1413: "MAC_IPSEC_ADDSPD",
    1414: "MAC_IPSEC_DELSPD",
    1415: "MAC_IPSEC_EVENT",
    1416: "MAC_UNLBL_STCADD",
    1417: "MAC_UNLBL_STCDEL",
    1418: "MAC_CALIPSO_ADD",
    1419: "MAC_CALIPSO_DEL",
    1500: "APPARMOR",
    1501: "APPARMOR_AUDIT",
    1502: "APPARMOR_ALLOWED",
    1503: "APPARMOR_DENIED",
    1504: "APPARMOR_HINT",
    1505: "APPARMOR_STATUS",
    1506: "APPARMOR_ERROR",
    1507: "APPARMOR_KILL",
    1700: "ANOM_PROMISCUOUS",
    1701: "ANOM_ABEND",
    1702: "ANOM_LINK",
    1703: "ANOM_CREAT",
    1800: "INTEGRITY_DATA",
    1801: "INTEGRITY_METADATA",
    1802: "INTEGRITY_STATUS",
    1803: "INTEGRITY_HASH",
    1804: "INTEGRITY_PCR",
    1805: "INTEGRITY_RULE",
    1806: "INTEGRITY_EVM_XATTR",
    1807: "INTEGRITY_POLICY_RULE",
    2000: "KERNEL",
    2100: "ANOM_LOGIN_FAILURES",
    2101: "ANOM_LOGIN_TIME",
    2102: "ANOM_LOGIN_SESSIONS",
    2103: "ANOM_LOGIN_ACCT",
    2104: "ANOM_LOGIN_LOCATION",
    2105: "ANOM_MAX_DAC",
    2106: "ANOM_MAX_MAC",
    2107: "ANOM_AMTU_FAIL",
    2108: "ANOM_RBAC_FAIL",
    2109: "ANOM_RBAC_INTEGRITY_FAIL",
    2110: "ANOM_CRYPTO_FAIL",
    2111: "ANOM_ACCESS_FS",
    2112: "ANOM_EXEC",
    2113: "ANOM_MK_EXEC",
    2114: "ANOM_ADD_ACCT",
    2115: "ANOM_DEL_ACCT",
    2116: "ANOM_MOD_ACCT",
    2117: "ANOM_ROOT_TRANS",
    2118: "ANOM_LOGIN_SERVICE",
    2119: "ANOM_LOGIN_ROOT",
    2120: "ANOM_ORIGIN_FAILURES",
    2121: "ANOM_SESSION",
    2200: "RESP_ANOMALY",
    2201: "RESP_ALERT",
    2202: "RESP_KILL_PROC",
    2203: "RESP_TERM_ACCESS",
    2204: "RESP_ACCT_REMOTE",
    2205: "RESP_ACCT_LOCK_TIMED",
    2206: "RESP_ACCT_UNLOCK_TIMED",
    2207: "RESP_ACCT_LOCK",
    2208: "RESP_TERM_LOCK",
    2209: "RESP_SEBOOL",
    2210: "RESP_EXEC",
    2211: "RESP_SINGLE",
    2212: "RESP_HALT",
    2213: "RESP_ORIGIN_BLOCK",
    2214: "RESP_ORIGIN_BLOCK_TIMED",
    2215: "RESP_ORIGIN_UNBLOCK_TIMED",
    2300: "USER_ROLE_CHANGE",
    2301: "ROLE_ASSIGN",
    2302: "ROLE_REMOVE",
    2303: "LABEL_OVERRIDE",
    2304: "LABEL_LEVEL_CHANGE",
    2305: "USER_LABELED_EXPORT",
    2306: "USER_UNLABELED_EXPORT",
    2307: "DEV_ALLOC",
    2308: "DEV_DEALLOC",
    2309: "FS_RELABEL",
    2310: "USER_MAC_POLICY_LOAD",
    2311: "ROLE_MODIFY",
    2312: "USER_MAC_CONFIG_CHANGE",
    2313: "USER_MAC_STATUS",
    2400: "CRYPTO_TEST_USER",
    2401: "CRYPTO_PARAM_CHANGE_USER",
    2402: "CRYPTO_LOGIN",
    2403: "CRYPTO_LOGOUT",
    2404: "CRYPTO_KEY_USER",
    2405: "CRYPTO_FAILURE_USER",
    2406: "CRYPTO_REPLAY_USER",
    2407: "CRYPTO_SESSION",
    2408: "CRYPTO_IKE_SA",
    2409: "CRYPTO_IPSEC_SA",
    2500: "VIRT_CONTROL",
    2501: "VIRT_RESOURCE",
    2502: "VIRT_MACHINE_ID",
    2503: "VIRT_INTEGRITY_CHECK",
    2504: "VIRT_CREATE",
    2505: "VIRT_DESTROY",
    2506: "VIRT_MIGRATE_IN",
    2507: "VIRT_MIGRATE_OUT",
}
# exit= errno names: number -> the name auditctl prints.
ERRNO_NAMES: dict[int, str] = {
    1: "EPERM",
    2: "ENOENT",
    3: "ESRCH",
    4: "EINTR",
    5: "EIO",
    6: "ENXIO",
    7: "E2BIG",
    8: "ENOEXEC",
    9: "EBADF",
    10: "ECHILD",
    11: "EAGAIN",
    12: "ENOMEM",
    13: "EACCES",
    14: "EFAULT",
    15: "ENOTBLK",
    16: "EBUSY",
    17: "EEXIST",
    18: "EXDEV",
    19: "ENODEV",
    20: "ENOTDIR",
    21: "EISDIR",
    22: "EINVAL",
    23: "ENFILE",
    24: "EMFILE",
    25: "ENOTTY",
    26: "ETXTBSY",
    27: "EFBIG",
    28: "ENOSPC",
    29: "ESPIPE",
    30: "EROFS",
    31: "EMLINK",
    32: "EPIPE",
    33: "EDOM",
    34: "ERANGE",
    35: "EDEADLK",
    36: "ENAMETOOLONG",
    37: "ENOLCK",
    38: "ENOSYS",
    39: "ENOTEMPTY",
    40: "ELOOP",
    42: "ENOMSG",
    43: "EIDRM",
    44: "ECHRNG",
    45: "EL2NSYNC",
    46: "EL3HLT",
    47: "EL3RST",
    48: "ELNRNG",
    49: "EUNATCH",
    50: "ENOCSI",
    51: "EL2HLT",
    52: "EBADE",
    53: "EBADR",
    54: "EXFULL",
    55: "ENOANO",
    56: "EBADRQC",
    57: "EBADSLT",
    59: "EBFONT",
    60: "ENOSTR",
    61: "ENODATA",
    62: "ETIME",
    63: "ENOSR",
    64: "ENONET",
    65: "ENOPKG",
    66: "EREMOTE",
    67: "ENOLINK",
    68: "EADV",
    69: "ESRMNT",
    70: "ECOMM",
    71: "EPROTO",
    72: "EMULTIHOP",
    73: "EDOTDOT",
    74: "EBADMSG",
    75: "EOVERFLOW",
    76: "ENOTUNIQ",
    77: "EBADFD",
    78: "EREMCHG",
    79: "ELIBACC",
    80: "ELIBBAD",
    81: "ELIBSCN",
    82: "ELIBMAX",
    83: "ELIBEXEC",
    84: "EILSEQ",
    85: "ERESTART",
    86: "ESTRPIPE",
    87: "EUSERS",
    88: "ENOTSOCK",
    89: "EDESTADDRREQ",
    90: "EMSGSIZE",
    91: "EPROTOTYPE",
    92: "ENOPROTOOPT",
    93: "EPROTONOSUPPORT",
    94: "ESOCKTNOSUPPORT",
    95: "EOPNOTSUPP",
    96: "EPFNOSUPPORT",
    97: "EAFNOSUPPORT",
    98: "EADDRINUSE",
    99: "EADDRNOTAVAIL",
    100: "ENETDOWN",
    101: "ENETUNREACH",
    102: "ENETRESET",
    103: "ECONNABORTED",
    104: "ECONNRESET",
    105: "ENOBUFS",
    106: "EISCONN",
    107: "ENOTCONN",
    108: "ESHUTDOWN",
    109: "ETOOMANYREFS",
    110: "ETIMEDOUT",
    111: "ECONNREFUSED",
    112: "EHOSTDOWN",
    113: "EHOSTUNREACH",
    114: "EALREADY",
    115: "EINPROGRESS",
    116: "ESTALE",
    117: "EUCLEAN",
    118: "ENOTNAM",
    119: "ENAVAIL",
    120: "EISNAM",
    121: "EREMOTEIO",
    122: "EDQUOT",
    123: "ENOMEDIUM",
    124: "EMEDIUMTYPE",
    125: "ECANCELED",
    126: "ENOKEY",
    127: "EKEYEXPIRED",
    128: "EKEYREVOKED",
    129: "EKEYREJECTED",
    130: "EOWNERDEAD",
    131: "ENOTRECOVERABLE",
    132: "ERFKILL",
    133: "EHWPOISON",
}
# Further names auditctl accepts for exit= (upper case).
ERRNO_ALIASES: dict[str, int] = {"EWOULDBLOCK": 11, "EDEADLOCK": 35}
