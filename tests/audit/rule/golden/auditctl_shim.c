/*
 * LD_PRELOAD shim that turns the installed auditctl into a kernel-free oracle for tests:
 *
 *   - rules auditctl would add or delete are written to $OAE_SHIM_OUT (u32 length + the
 *     struct audit_rule_data payload, with flags and action set) instead of being sent;
 *   - `auditctl -l` lists the payloads read from $OAE_SHIM_IN (same framing) instead of
 *     asking the kernel.
 *
 * Only functions auditctl calls in libaudit through the PLT are replaced, so auditctl's own
 * option parsing and printing run unchanged. Written for this project (not from libaudit).
 */
#define _GNU_SOURCE
#include <linux/audit.h>
#include <linux/netlink.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#define MESSAGE_MAX 8970 /* MAX_AUDIT_MESSAGE_LENGTH */

/* libaudit's struct audit_reply, as its public header lays it out. */
struct shim_audit_message {
	struct nlmsghdr nlh;
	char data[MESSAGE_MAX];
};
struct shim_audit_reply {
	int type;
	int len;
	struct nlmsghdr *nlh;
	struct shim_audit_message msg;
	union {
		void *status;
		struct audit_rule_data *ruledata;
		void *other;
	};
};

static FILE *listing;
static int listing_done;
static struct nlmsghdr reply_header;
static unsigned char reply_payload[sizeof(struct audit_rule_data) + 65536];

static int record(struct audit_rule_data *rule, int flags, int action)
{
	const char *path = getenv("OAE_SHIM_OUT");
	uint32_t size = sizeof(*rule) + rule->buflen;
	FILE *out;

	rule->flags = flags;
	rule->action = action;
	if (path == NULL || (out = fopen(path, "ab")) == NULL)
		return -1;
	fwrite(&size, sizeof(size), 1, out);
	fwrite(rule, 1, size, out);
	fclose(out);
	return (int)size;
}

int audit_add_rule_data(int fd, struct audit_rule_data *rule, int flags, int action)
{
	(void)fd;
	return record(rule, flags, action);
}

int audit_delete_rule_data(int fd, struct audit_rule_data *rule, int flags, int action)
{
	(void)fd;
	return record(rule, flags, action);
}

int audit_is_enabled(int fd)
{
	(void)fd;
	return 1;
}

int audit_request_rules_list_data(int fd)
{
	const char *path = getenv("OAE_SHIM_IN");
	(void)fd;
	listing = path ? fopen(path, "rb") : NULL;
	listing_done = 0;
	return listing ? 1 : -1;
}

/* Replies other than the faked rule list (e.g. the status libaudit asks for to learn the
 * kernel's features) still come from the kernel. */
int audit_get_reply(int fd, struct shim_audit_reply *rep, int block, int peek)
{
	uint32_t size;
	if (listing == NULL && !listing_done) {
		int (*real)(int, struct shim_audit_reply *, int, int) =
			(int (*)(int, struct shim_audit_reply *, int, int))dlsym(RTLD_NEXT,
										   "audit_get_reply");
		return real ? real(fd, rep, block, peek) : -1;
	}
	if (listing == NULL)
		return 0;
	memset(&reply_header, 0, sizeof(reply_header));
	rep->nlh = &reply_header;
	if (fread(&size, sizeof(size), 1, listing) != 1 || size > sizeof(reply_payload) ||
	    fread(reply_payload, 1, size, listing) != size) {
		listing_done = 1;
		fclose(listing);
		listing = NULL;
		rep->type = NLMSG_DONE;
		rep->len = 0;
		reply_header.nlmsg_type = NLMSG_DONE;
		reply_header.nlmsg_len = NLMSG_HDRLEN;
		return NLMSG_HDRLEN;
	}
	rep->type = AUDIT_LIST_RULES;
	rep->len = (int)size;
	reply_header.nlmsg_type = AUDIT_LIST_RULES;
	reply_header.nlmsg_len = NLMSG_HDRLEN + size;
	rep->ruledata = (struct audit_rule_data *)reply_payload;
	return (int)(NLMSG_HDRLEN + size);
}

/* auditctl waits on the netlink socket before each read of the list: nothing to wait for. */
int select(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds, struct timeval *timeout)
{
	int (*real)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
	if (listing != NULL)
		return 1;
	real = (int (*)(int, fd_set *, fd_set *, fd_set *, struct timeval *))dlsym(RTLD_NEXT,
										  "select");
	return real ? real(nfds, readfds, writefds, exceptfds, timeout) : -1;
}
