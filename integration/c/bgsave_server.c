/* A single-process HTTP server that forks a child after every response, as
 * redis forks its BGSAVE child: the child tries its inherited connection
 * (under the preload it is the parent's: ENOTCONN), closes it, the listener
 * and the epoll descriptor, and exits; the parent waits for it and serves on,
 * on the same keep-alive connection and new ones.
 *
 * Usage: bgsave_server PORT FILE
 * Prints "ready" once listening; on SIGTERM "forks N", "child-send ERRNO: K"
 * per errno the children's sends ended with, "bad-children M" (children that
 * did not exit 0) and "done". */
#include "oracle.h"
#include <sys/epoll.h>

static volatile sig_atomic_t stop;

static void on_term(int sig) {
    (void)sig;
    stop = 1;
}

static long forks, bad_children, send_errnos[256];

/* The BGSAVE-like child: touches and closes what it inherited. */
static void fork_child(int l, int ep, int c) {
    pid_t pid = fork();
    if (pid < 0) {
        bad_children++;
        return;
    }
    if (pid == 0) {
        errno = 0;
        ssize_t n = send(c, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        int code = n < 0 && errno > 0 && errno < 256 ? errno : 255;
        if (close(c) != 0 || close(l) != 0 || close(ep) != 0) code = 254;
        _exit(code);
    }
    forks++;
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            bad_children++;
            return;
        }
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) >= 254) {
        bad_children++;
        return;
    }
    send_errnos[WEXITSTATUS(status)]++;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR && !stop) continue;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Serves GETs on `c` until the client closes, forking after each response. */
static void serve(int l, int ep, int c, const char *body, size_t len) {
    char head[128];
    int hlen = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", len);
    char req[4096];
    size_t have = 0;
    while (!stop) {
        char *end = memmem(req, have, "\r\n\r\n", 4);
        if (end) {
            size_t used = (size_t)(end - req) + 4;
            memmove(req, req + used, have - used);
            have -= used;
            if (write_all(c, head, (size_t)hlen) < 0 || write_all(c, body, len) < 0) return;
            fork_child(l, ep, c);
            continue;
        }
        if (have == sizeof req) return;
        ssize_t n = read(c, req + have, sizeof req - have);
        if (n < 0 && errno == EINTR && !stop) continue;
        if (n <= 0) return;
        have += (size_t)n;
    }
}

int main(int argc, char **argv) {
    oracle_init();
    if (argc != 3) {
        fprintf(stderr, "usage: bgsave_server PORT FILE\n");
        return 2;
    }
    FILE *f = fopen(argv[2], "rb");
    if (!f) return 2;
    static char body[1 << 20];
    size_t len = fread(body, 1, sizeof body, f);
    fclose(f);

    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    int l = MUST(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    int one = 1;
    MUST(setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1]))};
    MUST(bind(l, SA(addr), sizeof addr));
    MUST(listen(l, 128));
    int ep = MUST(epoll_create1(EPOLL_CLOEXEC));
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = l};
    MUST(epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev));
    printf("ready\n");
    while (!stop) {
        struct epoll_event got[4];
        int n = epoll_wait(ep, got, 4, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            printf("FATAL epoll_wait: %s\n", errname(errno));
            return 1;
        }
        for (;;) {
            int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
            if (c < 0) {
                if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) break;
                printf("FATAL accept4: %s\n", errname(errno));
                return 1;
            }
            serve(l, ep, c, body, len);
            close(c);
        }
    }
    printf("forks %ld\n", forks);
    for (int e = 0; e < 256; e++)
        if (send_errnos[e]) printf("child-send %s: %ld\n", e == 255 ? "sent" : errname(e), send_errnos[e]);
    printf("bad-children %ld\n", bad_children);
    printf("done\n");
    return 0;
}
