/* Syscall storm generator for `make bench`: makes N audited calls as fast as it can and
 * prints how long they took.
 *   storm connect N PORT   N connect() calls to 127.0.0.1:PORT (a closed port: refused)
 *   storm exec N PATH      N fork + execve(PATH) + wait
 * Output: "calls=N seconds=S" on stdout. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int storm_connect(long n, int port) {
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    double start = now();
    for (long i = 0; i < n; i++) {
        /* A fresh socket per call: a refused socket cannot be reused for another connect. */
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) { perror("socket"); return 1; }
        connect(fd, (struct sockaddr *)&addr, sizeof addr);
        close(fd);
    }
    double elapsed = now() - start;
    printf("calls=%ld seconds=%.6f\n", n, elapsed);
    return 0;
}

static int storm_exec(long n, const char *path) {
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
        waitpid(pid, &status, 0);
    }
    printf("calls=%ld seconds=%.6f\n", n, now() - start);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "connect") == 0)
        return storm_connect(atol(argv[2]), atoi(argv[3]));
    if (argc == 4 && strcmp(argv[1], "exec") == 0)
        return storm_exec(atol(argv[2]), argv[3]);
    fprintf(stderr, "usage: storm connect N PORT | storm exec N PATH\n");
    return 2;
}
