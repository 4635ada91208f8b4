"""The kernel's audit and netlink constants, defined once (include/uapi/linux/audit.h,
include/uapi/linux/netlink.h, include/linux/socket.h). Every layer imports them from here.

Names for the whole message-type range (auditctl's `-F msgtype=NAME`, ausearch's `type=`)
are generated data: see names/ (scripts/gen_audit_names.py).
"""

from __future__ import annotations

NETLINK_AUDIT = 9  # the netlink protocol of kernel audit
AUDIT_NLGRP_READLOG = 1  # multicast group of the read-only record copy (CAP_AUDIT_READ)

# netlink message types and flags
NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4
NLMSG_HDRLEN = 16  # sizeof(struct nlmsghdr): u32 len, u16 type, u16 flags, u32 seq, u32 pid
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4

# audit control message types (requests and their replies)
AUDIT_GET = 1000
AUDIT_SET = 1001
AUDIT_SIGNAL_INFO = 1010
AUDIT_ADD_RULE = 1011
AUDIT_DEL_RULE = 1012
AUDIT_LIST_RULES = 1013
AUDIT_SET_FEATURE = 1018
AUDIT_GET_FEATURE = 1019

# record types
AUDIT_USER = 1005  # below AUDIT_FIRST_USER_MSG, yet a record: a user message (auditctl -m)
AUDIT_LOGIN = 1006  # below AUDIT_FIRST_USER_MSG, yet a record: a loginuid change
AUDIT_FIRST_USER_MSG = 1100  # types below are control messages, but for the two above
AUDIT_LAST_USER_MSG = 1199  # the first range of user messages (osquery's user_events)
AUDIT_LAST_DAEMON = 1299  # 1100-1199 user messages, then 1200-1299 the daemon's own
AUDIT_FIRST_USER_MSG2 = 2100  # the second range of user messages
AUDIT_LAST_USER_MSG2 = 2999
AUDIT_TRUSTED_APP = 1121  # "trusted application message": a user message type for apps
AUDIT_SYSCALL = 1300
AUDIT_PATH = 1302
AUDIT_IPC = 1303
AUDIT_SOCKETCALL = 1304
AUDIT_CONFIG_CHANGE = 1305
AUDIT_SOCKADDR = 1306
AUDIT_CWD = 1307
AUDIT_EXECVE = 1309
AUDIT_EOE = 1320
AUDIT_SECCOMP = 1326  # a seccomp filter's logged action
AUDIT_PROCTITLE = 1327
AUDIT_REPLACE = 1329  # the kernel's liveness probe of the audit daemon: not an event
AUDIT_EVENT_LISTENER = 1335
AUDIT_OPENAT2 = 1337  # openat2's struct open_how: oflag (octal), mode, resolve
AUDIT_AVC = 1400  # first SELinux type; AppArmor also logs as AVC (with apparmor=)
AUDIT_MAC_UNLBL_STCDEL = 1417  # last of the SELinux types osquery routes to selinux_events
AUDIT_FIRST_APPARMOR = 1500  # AppArmor's own types 1500-1507 (older kernels)
AUDIT_LAST_APPARMOR = 1507
AUDIT_KERNEL = 2000  # "audit initialized" at boot: the one record with serial 0
UNSET_ID = 0xFFFFFFFF  # (u32)-1: an auid, ses or other id that is not set
RECORDS_BELOW_FIRST_USER_MSG = frozenset({AUDIT_USER, AUDIT_LOGIN})

# address families (include/linux/socket.h)
AF_UNSPEC = 0
AF_UNIX = 1
AF_INET = 2
AF_INET6 = 10
AF_NETLINK = 16
AF_MAX = 46  # one past the last family: saddr_fam must be below it
