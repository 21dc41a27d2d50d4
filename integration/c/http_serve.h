/* The HTTP serving loop the pre-fork and exec test servers share: a
 * SIGTERM flag, a write that retries after EINTR unless stopping, and a
 * keep-alive GET loop answering every request with one body. */
#ifndef SLUICE_HTTP_SERVE_H
#define SLUICE_HTTP_SERVE_H

#include "oracle.h"

static volatile sig_atomic_t stop;

static void on_term(int sig) {
    (void)sig;
    stop = 1;
}

static void write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR && !stop) continue;
            return;
        }
        p += k;
        n -= (size_t)k;
    }
}

/* Serves GETs on `c` until the client closes; returns when it does. */
static void serve(int c, const char *body, size_t len) {
    char head[128];
    int hlen = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", len);
    char req[4096];
    size_t have = 0;
    for (;;) {
        char *end = memmem(req, have, "\r\n\r\n", 4);
        if (end) {
            size_t used = (size_t)(end - req) + 4;
            memmove(req, req + used, have - used);
            have -= used;
            write_all(c, head, (size_t)hlen);
            write_all(c, body, len);
            continue;
        }
        if (have == sizeof req) return;
        ssize_t n = read(c, req + have, sizeof req - have);
        if (n < 0 && errno == EINTR && !stop) continue;
        if (n <= 0) return;
        have += (size_t)n;
    }
}

#endif
