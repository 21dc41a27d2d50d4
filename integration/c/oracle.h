/* Shared helpers of the preload oracle programs (integration/tests/preload_oracle.rs).
 *
 * Each program prints a transcript that must be byte-identical when run on the
 * kernel and under libsluice_preload.so: only values that do not change from
 * run to run are printed (results, errno names, descriptor numbers, flags),
 * never ports, pids or times. stdout is unbuffered so that output written
 * before a fork is not duplicated. */
#ifndef SLUICE_ORACLE_H
#define SLUICE_ORACLE_H

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* "EAGAIN" for EAGAIN, "0" for no error. */
static inline const char *errname(int e) {
    if (e == 0) return "0";
    const char *name = strerrorname_np(e);
    return name ? name : "E?";
}

static inline long show(const char *what, long r, int e) {
    if (r < 0)
        printf("%s = -1 %s\n", what, errname(e));
    else
        printf("%s = %ld\n", what, r);
    return r;
}

/* Runs `expr`, prints "expr = result" or "expr = -1 ERRNO", yields the result. */
#define TRY(expr) ({ errno = 0; long r_ = (long)(expr); show(#expr, r_, errno); })

/* Like TRY, but a failure ends the program: for set-up steps. */
#define MUST(expr) ({                                                     \
    errno = 0;                                                            \
    long r_ = (long)(expr);                                               \
    if (r_ < 0) {                                                         \
        printf("FATAL %s:%d: %s = -1 %s\n", __FILE__, __LINE__, #expr,    \
               errname(errno));                                           \
        exit(99);                                                         \
    }                                                                     \
    r_;                                                                   \
})

static inline void oracle_init(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
}

static inline struct sockaddr_in loopback(unsigned short port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

#define SA(a) ((struct sockaddr *)&(a))

/* A listener on 127.0.0.1 with a kernel-chosen port, stored in *addr. */
static inline int listener(struct sockaddr_in *addr, int type_flags) {
    int fd = MUST(socket(AF_INET, SOCK_STREAM | type_flags, 0));
    *addr = loopback(0);
    MUST(bind(fd, SA(*addr), sizeof *addr));
    MUST(listen(fd, 64));
    socklen_t len = sizeof *addr;
    MUST(getsockname(fd, SA(*addr), &len));
    return fd;
}

/* A connected pair: *client connected to *server through the listener `l`. */
static inline void connected_pair(int l, struct sockaddr_in addr, int *client, int *server) {
    *client = MUST(socket(AF_INET, SOCK_STREAM, 0));
    MUST(connect(*client, SA(addr), sizeof addr));
    *server = MUST(accept(l, NULL, NULL));
}

/* Reads exactly n bytes (blocking), or fails the program. */
static inline void read_exact(int fd, char *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0) {
            printf("FATAL read_exact: %zd %s\n", r, errname(errno));
            exit(99);
        }
        got += (size_t)r;
    }
}

static inline int int_opt(int fd, int level, int name) {
    int v = -1;
    socklen_t len = sizeof v;
    if (getsockopt(fd, level, name, &v, &len) < 0) return -errno;
    return v;
}

#endif
