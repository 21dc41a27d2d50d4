/* epoll over a mix of sockets, pipes and eventfds: level-triggered,
 * edge-triggered, one-shot, RDHUP/HUP, ctl errors, nested instances, timeouts.
 * Events of one wait are printed sorted by their data word, so the order
 * inside the kernel's ready list does not matter. */
#include "oracle.h"
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>

enum { PIPE = 1, EVENT = 2, SERVER = 3, CLIENT = 4, LISTENER = 5, FRESH = 6, INNER = 7 };
static const char *names[] = {"?", "pipe", "eventfd", "server", "client", "listener", "fresh", "inner"};

static int cmp(const void *a, const void *b) {
    const struct epoll_event *x = a, *y = b;
    return (x->data.u64 > y->data.u64) - (x->data.u64 < y->data.u64);
}

static void wait_on(int ep, int timeout, const char *label) {
    struct epoll_event ev[16];
    errno = 0;
    int n = epoll_wait(ep, ev, 16, timeout);
    if (n < 0) {
        printf("%s: -1 %s\n", label, errname(errno));
        return;
    }
    qsort(ev, (size_t)n, sizeof ev[0], cmp);
    printf("%s: %d", label, n);
    for (int i = 0; i < n; i++) printf(" %s=%#x", names[ev[i].data.u64], ev[i].events);
    printf("\n");
}

static void add(int ep, int op, int fd, unsigned events, int tag, const char *label) {
    struct epoll_event ev = {.events = events, .data.u64 = (unsigned long)tag};
    errno = 0;
    int r = epoll_ctl(ep, op, fd, &ev);
    printf("%s = %d %s\n", label, r, r < 0 ? errname(errno) : "");
}

int main(void) {
    oracle_init();
    char buf[64];
    int ep = TRY(epoll_create1(EPOLL_CLOEXEC));
    int p[2];
    MUST(pipe(p));
    int efd = MUST(eventfd(0, EFD_NONBLOCK));
    struct sockaddr_in addr;
    int l = listener(&addr, SOCK_NONBLOCK);
    int c, s;
    connected_pair(l, addr, &c, &s);

    add(ep, EPOLL_CTL_ADD, p[0], EPOLLIN, PIPE, "add pipe LT");
    add(ep, EPOLL_CTL_ADD, efd, EPOLLIN | EPOLLET, EVENT, "add eventfd ET");
    add(ep, EPOLL_CTL_ADD, s, EPOLLIN | EPOLLET | EPOLLRDHUP, SERVER, "add server ET|RDHUP");
    add(ep, EPOLL_CTL_ADD, c, EPOLLIN | EPOLLONESHOT, CLIENT, "add client ONESHOT");
    add(ep, EPOLL_CTL_ADD, l, EPOLLIN, LISTENER, "add listener LT");
    add(ep, EPOLL_CTL_ADD, s, EPOLLIN, SERVER, "add server again");
    add(ep, EPOLL_CTL_MOD, 0, EPOLLIN, PIPE, "mod stdin");
    add(ep, EPOLL_CTL_ADD, ep, EPOLLIN, PIPE, "add self");
    add(ep, EPOLL_CTL_ADD, s, EPOLLIN | EPOLLEXCLUSIVE, SERVER, "add EXCLUSIVE twice");
    wait_on(ep, 0, "idle");

    /* Level-triggered pipe. */
    MUST(write(p[1], "x", 1));
    wait_on(ep, 1000, "pipe written");
    wait_on(ep, 0, "pipe still readable");
    MUST(read(p[0], buf, 1));
    wait_on(ep, 0, "pipe drained");

    /* Edge-triggered eventfd: one report per change. */
    uint64_t one = 1;
    MUST(write(efd, &one, sizeof one));
    wait_on(ep, 1000, "eventfd written");
    wait_on(ep, 0, "eventfd not again");
    MUST(write(efd, &one, sizeof one));
    wait_on(ep, 1000, "eventfd written again");

    /* Edge-triggered socket: new data fires again even if not drained. */
    MUST(write(c, "ab", 2));
    wait_on(ep, 1000, "server has data");
    wait_on(ep, 0, "server not again");
    MUST(write(c, "cd", 2));
    wait_on(ep, 1000, "server more data");
    read_exact(s, buf, 4);
    MUST(read(efd, &one, sizeof one));

    /* One-shot client: reported once, until re-armed. */
    MUST(write(s, "12", 2));
    wait_on(ep, 1000, "client has data");
    MUST(write(s, "34", 2));
    wait_on(ep, 50, "client disarmed");
    add(ep, EPOLL_CTL_MOD, c, EPOLLIN | EPOLLONESHOT, CLIENT, "re-arm client");
    wait_on(ep, 1000, "client re-armed");
    read_exact(c, buf, 4);

    /* Listener readable while a connection waits. */
    int c2 = MUST(socket(AF_INET, SOCK_STREAM, 0));
    MUST(connect(c2, SA(addr), sizeof addr));
    wait_on(ep, 1000, "connection pending");
    wait_on(ep, 0, "still pending");
    int s2 = MUST(accept(l, NULL, NULL));
    wait_on(ep, 0, "accepted");

    /* A fresh socket: EPOLLOUT|EPOLLHUP, as the kernel reports it. */
    int fresh = TRY(socket(AF_INET, SOCK_STREAM, 0));
    add(ep, EPOLL_CTL_ADD, fresh, EPOLLIN | EPOLLOUT, FRESH, "add fresh socket");
    wait_on(ep, 0, "fresh socket");
    add(ep, EPOLL_CTL_DEL, fresh, 0, FRESH, "del fresh socket");
    add(ep, EPOLL_CTL_DEL, fresh, 0, FRESH, "del it again");

    /* Peer half-close and close. */
    MUST(shutdown(c, SHUT_WR));
    wait_on(ep, 1000, "client shut down writing");
    add(ep, EPOLL_CTL_DEL, s, 0, SERVER, "del server");
    MUST(shutdown(s, SHUT_WR));
    add(ep, EPOLL_CTL_MOD, c, EPOLLIN | EPOLLRDHUP, CLIENT, "watch client RDHUP");
    wait_on(ep, 1000, "both directions shut");

    /* Closing a watched descriptor removes it. */
    MUST(close(c));
    MUST(close(s));
    wait_on(ep, 0, "after closing the pair");

    /* Nested: an epoll instance inside another, and in poll. */
    int outer = TRY(epoll_create(1));
    add(outer, EPOLL_CTL_ADD, ep, EPOLLIN, INNER, "add inner to outer");
    wait_on(outer, 0, "outer idle");
    MUST(write(c2, "z", 1));
    add(ep, EPOLL_CTL_ADD, s2, EPOLLIN, SERVER, "add second server");
    wait_on(outer, 1000, "outer sees inner");
    struct pollfd pfd = {.fd = ep, .events = POLLIN};
    TRY(poll(&pfd, 1, 0));
    printf("poll on inner revents %#x\n", pfd.revents);
    wait_on(ep, 0, "inner");

    /* Timeouts and the signal-mask variants. */
    struct epoll_event ev[4];
    TRY(epoll_wait(ep, ev, 0, 0));
    TRY(epoll_wait(p[0], ev, 4, 0));
    MUST(read(s2, buf, 1));
    sigset_t mask;
    sigemptyset(&mask);
    TRY(epoll_pwait(ep, ev, 4, 30, &mask));
    struct timespec ts = {0, 20 * 1000 * 1000};
    TRY(epoll_pwait2(ep, ev, 4, &ts, &mask));
    ts.tv_nsec = -1;
    TRY(epoll_pwait2(ep, ev, 4, &ts, NULL));
    TRY(close(outer));
    TRY(close(ep));
    return 0;
}
