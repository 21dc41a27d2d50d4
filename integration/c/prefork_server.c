/* A classic pre-fork HTTP server: the parent listens (non-blocking), forks
 * WORKERS workers and waits; each worker makes its own epoll instance, waits
 * on the inherited listener, accept4s and serves its keep-alive connections
 * one at a time with the file given on the command line. Under the preload
 * this is the inherited-listener path of fork (issue 4): each worker's first
 * epoll_ctl re-creates the listener, which joins the parent's listen group.
 *
 * Usage: prefork_server PORT FILE WORKERS [poll]
 * With "poll" the workers wait in poll(2) instead of epoll. Prints "worker ready" per worker once it waits on the listener. On SIGTERM
 * the parent stops the workers, each prints "served N" (its connections),
 * and the parent prints "done". */
#include "http_serve.h"
#include <sys/epoll.h>

/* One line in one write(2): the workers share the parent's stdout pipe, and
 * an unbuffered printf may write a line in pieces that interleave. */
static void say(const char *line) {
    if (write(STDOUT_FILENO, line, strlen(line)) < 0) return;
}

/* Waits until the listener is readable: epoll, or poll with `ep` -1. */
static int wait_listener(int ep, int l) {
    if (ep >= 0) {
        struct epoll_event got[4];
        return epoll_wait(ep, got, 4, -1);
    }
    struct pollfd p = {.fd = l, .events = POLLIN};
    return poll(&p, 1, -1);
}

static int worker(int l, const char *body, size_t len, int use_poll) {
    int ep = -1;
    if (use_poll) {
        /* The first poll re-creates the listener under the preload. */
        struct pollfd p = {.fd = l, .events = POLLIN};
        MUST(poll(&p, 1, 0));
    } else {
        ep = MUST(epoll_create1(EPOLL_CLOEXEC));
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = l};
        MUST(epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev));
    }
    say("worker ready\n");
    long served = 0;
    while (!stop) {
        int n = wait_listener(ep, l);
        if (n < 0) {
            if (errno == EINTR) continue;
            printf("FATAL wait: %s\n", errname(errno));
            return 1;
        }
        for (;;) {
            int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
            if (c < 0) {
                if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) break;
                printf("FATAL accept4: %s\n", errname(errno));
                return 1;
            }
            served++;
            serve(c, body, len);
            close(c);
        }
    }
    char line[64];
    snprintf(line, sizeof line, "served %ld\n", served);
    say(line);
    return 0;
}

int main(int argc, char **argv) {
    oracle_init();
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: prefork_server PORT FILE WORKERS [poll]\n");
        return 2;
    }
    int use_poll = argc == 5 && strcmp(argv[4], "poll") == 0;
    int workers = atoi(argv[3]);
    if (workers < 1 || workers > 64) return 2;
    FILE *f = fopen(argv[2], "rb");
    if (!f) return 2;
    static char body[4 << 20];
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

    pid_t pids[64];
    for (int i = 0; i < workers; i++) {
        pids[i] = MUST(fork());
        if (pids[i] == 0) _exit(worker(l, body, len, use_poll));
    }
    /* The parent only holds the listener for its workers. */
    int failed = 0;
    for (int i = 0; i < workers; i++) {
        int status = 0;
        while (waitpid(pids[i], &status, 0) < 0) {
            if (errno != EINTR) {
                printf("FATAL waitpid: %s\n", errname(errno));
                return 1;
            }
            if (stop)
                for (int j = 0; j < workers; j++) kill(pids[j], SIGTERM);
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed = 1;
    }
    close(l);
    printf("done\n");
    return failed;
}
