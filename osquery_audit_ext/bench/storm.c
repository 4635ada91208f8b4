/* Syscall storm generator for `make bench`: makes N audited calls as fast as it can and
 * prints how long they took.
 *   storm connect N PORT   N connect() calls to 127.0.0.1:PORT (a closed port: refused)
 *   storm exec N PATH      N fork + execve(PATH) + wait
 *   storm usermsg N TYPE   N audit user messages of TYPE (1005, 1100-1199 or 2100-2999)
 *                          sent over NETLINK_AUDIT, no ack asked (the kernel still sends
 *                          back an error message for each one it refuses)
 *   storm sink             become the audit daemon (unicast) and discard every record until
 *                          SIGTERM or SIGINT: the cheapest consumer there can be, which
 *                          shows how fast a storm can go when the consumer costs nothing.
 *                          Prints "ready" once registered, "records=N" when it ends, and
 *                          gives the audit pid back if it still holds it.
 * Output: "calls=N seconds=S errors=E" on stdout; E counts failed calls (connect: other
 * than ECONNREFUSED; exec: children not exiting 0; usermsg: refused messages). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/audit.h>
#include <linux/netlink.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef NETLINK_AUDIT
#define NETLINK_AUDIT 9
#endif

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void report(long calls, double seconds, long errors) {
    printf("calls=%ld seconds=%.6f errors=%ld\n", calls, seconds, errors);
    fflush(stdout);
}

static int storm_connect(long n, int port) {
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    long errors = 0;
    double start = now();
    for (long i = 0; i < n; i++) {
        /* A fresh socket per call: a refused socket cannot be reused for another connect. */
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) { perror("socket"); return 1; }
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0 || errno != ECONNREFUSED)
            errors++;
        close(fd);
    }
    report(n, now() - start, errors);
    return 0;
}

static int storm_exec(long n, const char *path) {
    long errors = 0;
    double start = now();
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) { perror("fork"); return 1; }
        if (pid == 0) {
            char *argv[] = {(char *)path, NULL};
            char *envp[] = {NULL};
            execve(path, argv, envp);
            _exit(127);
        }
        int status;
        if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            errors++;
    }
    report(n, now() - start, errors);
    return 0;
}

/* Read whatever the kernel sent back without waiting: error messages for refused sends. */
static long drain_errors(int fd, int *first_errno) {
    char buf[8192];
    long errors = 0;
    for (;;) {
        ssize_t got = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (got < 0) break;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)got);
             h = NLMSG_NEXT(h, got)) {
            if (h->nlmsg_type != NLMSG_ERROR) continue;
            struct nlmsgerr *err = NLMSG_DATA(h);
            if (err->error != 0) {
                if (!*first_errno) *first_errno = -err->error;
                errors++;
            }
        }
    }
    return errors;
}

static int storm_usermsg(long n, int type) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_AUDIT);
    if (fd < 0) { perror("socket(NETLINK_AUDIT)"); return 1; }
    struct sockaddr_nl kernel;
    memset(&kernel, 0, sizeof kernel);
    kernel.nl_family = AF_NETLINK;
    union { struct nlmsghdr h; char bytes[NLMSG_SPACE(128)]; } msg;
    long errors = 0;
    int first_errno = 0;
    pid_t self = getpid();
    double start = now();
    for (long i = 0; i < n; i++) {
        char *text = NLMSG_DATA(&msg.h);
        int len = snprintf(text, 128, "oae_bench usermsg pid %d n %ld", (int)self, i) + 1;
        msg.h.nlmsg_len = NLMSG_LENGTH(len);
        msg.h.nlmsg_type = (unsigned short)type;
        msg.h.nlmsg_flags = NLM_F_REQUEST;
        msg.h.nlmsg_seq = (unsigned int)(i + 1);
        msg.h.nlmsg_pid = 0;
        /* The kernel handles the message inside this sendto, in our context: when the
         * audit backlog is full we sleep here, as an audited syscall would. */
        while (sendto(fd, &msg, msg.h.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
            if (errno == EINTR) continue;
            if (errno == ENOBUFS || errno == EAGAIN) { usleep(100); continue; }
            perror("sendto(NETLINK_AUDIT)");
            return 1;
        }
        if ((i & 1023) == 1023) errors += drain_errors(fd, &first_errno);
    }
    double elapsed = now() - start;
    errors += drain_errors(fd, &first_errno);
    close(fd);
    if (first_errno) fprintf(stderr, "storm: the kernel refused messages: %s\n", strerror(first_errno));
    report(n, elapsed, errors);
    return 0;
}

static volatile sig_atomic_t sink_stop = 0;

static void on_stop(int sig) { (void)sig; sink_stop = 1; }

/* Send AUDIT_GET or AUDIT_SET and read the reply into *status (GET) or the ack (SET);
 * 0 on success, else the kernel's errno. */
static int audit_request(int fd, int type, struct audit_status *status) {
    union { struct nlmsghdr h; char bytes[NLMSG_SPACE(sizeof(struct audit_status))]; } msg;
    memset(&msg, 0, sizeof msg);
    msg.h.nlmsg_len = NLMSG_LENGTH(type == AUDIT_SET ? sizeof *status : 0);
    msg.h.nlmsg_type = (unsigned short)type;
    msg.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    msg.h.nlmsg_seq = 1;
    if (type == AUDIT_SET) memcpy(NLMSG_DATA(&msg.h), status, sizeof *status);
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    if (sendto(fd, &msg, msg.h.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0)
        return errno;
    char buf[8192];
    for (int tries = 0; tries < 1000; tries++) {
        ssize_t got = recv(fd, buf, sizeof buf, 0);
        if (got < 0) { if (errno == EINTR) continue; return errno; }
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)got);
             h = NLMSG_NEXT(h, got)) {
            if (h->nlmsg_seq != 1) continue;  /* a record, not our reply */
            if (h->nlmsg_type == NLMSG_ERROR) {
                struct nlmsgerr *err = NLMSG_DATA(h);
                if (err->error != 0 || type == AUDIT_SET) return -err->error;
            } else if (h->nlmsg_type == AUDIT_GET && type == AUDIT_GET) {
                memset(status, 0, sizeof *status);
                size_t len = h->nlmsg_len - NLMSG_HDRLEN;
                memcpy(status, NLMSG_DATA(h), len < sizeof *status ? len : sizeof *status);
                return 0;
            }
        }
    }
    return ETIMEDOUT;
}

static int storm_sink(void) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_AUDIT);
    if (fd < 0) { perror("socket(NETLINK_AUDIT)"); return 1; }
    int size = 32 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
    struct audit_status status;
    memset(&status, 0, sizeof status);
    status.mask = AUDIT_STATUS_PID;
    status.pid = (unsigned int)getpid();
    int err = audit_request(fd, AUDIT_SET, &status);
    if (err) { fprintf(stderr, "storm: cannot become the audit daemon: %s\n", strerror(err)); return 1; }
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_stop;  /* no SA_RESTART: a signal ends the blocking read */
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    printf("ready\n");
    fflush(stdout);
    enum { BATCH = 64, SLOT = 16384 };
    static char data[BATCH][SLOT];
    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = data[i];
        iov[i].iov_len = SLOT;
        memset(&msgs[i], 0, sizeof msgs[i]);
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    long records = 0;
    while (!sink_stop) {
        int got = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        if (got > 0) records += got;
        else if (got < 0 && errno != EINTR && errno != ENOBUFS) { perror("recvmmsg"); break; }
    }
    /* Give the pid back only if it is still ours. */
    if (audit_request(fd, AUDIT_GET, &status) == 0 && status.pid == (unsigned int)getpid()) {
        memset(&status, 0, sizeof status);
        status.mask = AUDIT_STATUS_PID;
        status.pid = 0;
        audit_request(fd, AUDIT_SET, &status);
    }
    close(fd);
    printf("records=%ld\n", records);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "connect") == 0)
        return storm_connect(atol(argv[2]), atoi(argv[3]));
    if (argc == 4 && strcmp(argv[1], "exec") == 0)
        return storm_exec(atol(argv[2]), argv[3]);
    if (argc == 4 && strcmp(argv[1], "usermsg") == 0)
        return storm_usermsg(atol(argv[2]), atoi(argv[3]));
    if (argc == 2 && strcmp(argv[1], "sink") == 0)
        return storm_sink();
    fprintf(stderr,
            "usage: storm connect N PORT | storm exec N PATH | storm usermsg N TYPE | storm sink\n");
    return 2;
}
