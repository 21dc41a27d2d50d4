/* A socket added to epoll before it is connected, as nginx adds its
 * upstream connections (ngx_event_connect_peer: epoll_ctl ADD with
 * EPOLLIN|EPOLLOUT|EPOLLET, then connect): the registration holds across
 * the connect, reports the connect's EPOLLOUT and later input, and ADD,
 * MOD and DEL fail as the kernel's do. A second socket is added and
 * deleted before its connect and reports nothing after. */
#include "oracle.h"
#include <sys/epoll.h>

/* Waits up to 2 s for an event with `data` that has `want`; prints it. */
static void wait_for(int ep, unsigned long data, unsigned want, const char *what) {
    for (int i = 0; i < 200; i++) {
        struct epoll_event ev[8];
        int n = MUST(epoll_wait(ep, ev, 8, 10));
        for (int k = 0; k < n; k++) {
            if (ev[k].data.u64 == data && (ev[k].events & want)) {
                printf("%s: event on %lu\n", what, data);
                return;
            }
        }
    }
    printf("%s: no event on %lu\n", what, data);
}

/* Events for `data` within 100 ms. */
static int count_events(int ep, unsigned long data) {
    int seen = 0;
    for (int i = 0; i < 10; i++) {
        struct epoll_event ev[8];
        int n = MUST(epoll_wait(ep, ev, 8, 10));
        for (int k = 0; k < n; k++) seen += ev[k].data.u64 == data;
    }
    return seen;
}

static void connect_started(int fd, struct sockaddr_in *addr) {
    errno = 0;
    int r = connect(fd, SA(*addr), sizeof *addr);
    printf("connect started: %s\n", r == 0 || errno == EINPROGRESS ? "yes" : errname(errno));
}

int main(void) {
    oracle_init();
    struct sockaddr_in addr;
    int l = listener(&addr, 0);
    int ep = MUST(epoll_create1(EPOLL_CLOEXEC));

    int c = MUST(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u64 = 7};
    TRY(epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev));
    TRY(epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev));
    TRY(epoll_ctl(ep, EPOLL_CTL_MOD, c, NULL));
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    TRY(epoll_ctl(ep, EPOLL_CTL_MOD, c, &ev));
    connect_started(c, &addr);
    wait_for(ep, 7, EPOLLOUT, "connected");
    int err = -1;
    socklen_t len = sizeof err;
    MUST(getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len));
    printf("SO_ERROR = %s\n", errname(err));

    int s = MUST(accept(l, NULL, NULL));
    TRY(send(c, "ping", 4, 0));
    char buf[16] = {0};
    TRY(recv(s, buf, sizeof buf, 0));
    TRY(send(s, "pong", 4, 0));
    wait_for(ep, 7, EPOLLIN, "reply");
    memset(buf, 0, sizeof buf);
    TRY(recv(c, buf, sizeof buf, 0));
    printf("client read %s\n", buf);
    TRY(close(s));
    wait_for(ep, 7, EPOLLRDHUP, "peer closed");
    TRY(epoll_ctl(ep, EPOLL_CTL_DEL, c, NULL));
    TRY(epoll_ctl(ep, EPOLL_CTL_DEL, c, NULL));
    TRY(close(c));

    int d = MUST(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u64 = 8;
    TRY(epoll_ctl(ep, EPOLL_CTL_ADD, d, &ev));
    TRY(epoll_ctl(ep, EPOLL_CTL_DEL, d, NULL));
    TRY(epoll_ctl(ep, EPOLL_CTL_DEL, d, NULL));
    connect_started(d, &addr);
    printf("events on the deleted registration: %d\n", count_events(ep, 8));
    TRY(epoll_ctl(ep, EPOLL_CTL_ADD, 12345, &ev));
    TRY(close(d));
    TRY(close(l));
    return 0;
}
