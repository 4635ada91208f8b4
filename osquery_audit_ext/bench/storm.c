/* Syscall storm generator for `make bench`: makes N audited calls as fast as it can and
 * prints how long they took.
 *   storm connect N PORT   N connect() calls to 127.0.0.1:PORT (a closed port: refused)
 *   storm exec N PATH      N fork + execve(PATH) + wait
 *   storm usermsg N TYPE   N audit user messages of TYPE (1005, 1100-1199 or 2100-2999)
 *                          sent over NETLINK_AUDIT, no ack asked (the kernel still sends
 *                          back an error message for each one it refuses)
 * Output: "calls=N seconds=S errors=E" on stdout; E counts failed calls (connect: other
 * than ECONNREFUSED; exec: children not exiting 0; usermsg: refused messages). */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
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

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "connect") == 0)
        return storm_connect(atol(argv[2]), atoi(argv[3]));
    if (argc == 4 && strcmp(argv[1], "exec") == 0)
        return storm_exec(atol(argv[2]), argv[3]);
    if (argc == 4 && strcmp(argv[1], "usermsg") == 0)
        return storm_usermsg(atol(argv[2]), atoi(argv[3]));
    fprintf(stderr, "usage: storm connect N PORT | storm exec N PATH | storm usermsg N TYPE\n");
    return 2;
}
