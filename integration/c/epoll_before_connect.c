/* A socket added to an epoll set before it is connected, as nginx does with
 * its upstream connections (ngx_event_connect_peer: socket, FIONBIO,
 * epoll_ctl ADD with EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET, then connect).
 * The registration must follow the socket to where it is decided (under the
 * preload: a Sluice session for a remote address), with the events and data
 * last set by MOD; a socket deleted from the set before its connect is not
 * reported. Usage: epoll_before_connect IP PORT (the server echoes what it
 * gets and closes after the client's FIN). */
#include "oracle.h"
#include <sys/epoll.h>
#include <sys/ioctl.h>

#define SA(a) ((struct sockaddr *)&(a))

enum { FIRST = 7, SECOND = 8 };

/* Waits (up to 10 s) for `want` in the events reported with `data`; prints
 * them (only the bits this program asked for). */
static void wait_for(int ep, unsigned long data, unsigned want, const char *label) {
    struct epoll_event ev[8];
    for (int tries = 0; tries < 100; tries++) {
        int n = epoll_wait(ep, ev, 8, 100);
        for (int i = 0; i < n; i++) {
            if (ev[i].data.u64 == SECOND) {
                printf("%s: the deleted socket was reported %#x\n", label, ev[i].events);
            }
            if (ev[i].data.u64 == data && (ev[i].events & want)) {
                printf("%s: %#x\n", label, ev[i].events & (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLHUP | EPOLLERR));
                return;
            }
        }
    }
    printf("%s: never reported\n", label);
}

static int so_error(int fd) {
    int v = -1;
    socklen_t len = sizeof v;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &v, &len);
    return v;
}

int main(int argc, char **argv) {
    oracle_init();
    if (argc != 3) {
        printf("usage: epoll_before_connect IP PORT\n");
        return 2;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &addr.sin_addr);
    int ep = MUST(epoll_create1(EPOLL_CLOEXEC));

    /* The first socket: added before connect, modified, then connected. */
    int c = MUST(socket(AF_INET, SOCK_STREAM, 0));
    int on = 1;
    TRY(ioctl(c, FIONBIO, &on));
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.u64 = FIRST};
    TRY(epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev));
    TRY(epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev));
    ev.events = EPOLLOUT | EPOLLET;
    TRY(epoll_ctl(ep, EPOLL_CTL_MOD, c, &ev));
    TRY(epoll_ctl(ep, EPOLL_CTL_MOD, c, NULL));

    /* The second: added, then deleted, before its connect. */
    int d = MUST(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    struct epoll_event ev2 = {.events = EPOLLIN | EPOLLOUT, .data.u64 = SECOND};
    TRY(epoll_ctl(ep, EPOLL_CTL_ADD, d, &ev2));
    TRY(epoll_ctl(ep, EPOLL_CTL_DEL, d, NULL));
    TRY(epoll_ctl(ep, EPOLL_CTL_DEL, d, NULL));

    TRY(connect(c, SA(addr), sizeof addr));
    TRY(connect(d, SA(addr), sizeof addr));
    wait_for(ep, FIRST, EPOLLOUT, "connected");
    printf("SO_ERROR %d\n", so_error(c));

    /* Now for input: the echo of what it sends, then the server's FIN. */
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
    TRY(epoll_ctl(ep, EPOLL_CTL_MOD, c, &ev));
    TRY(write(c, "ping", 4));
    wait_for(ep, FIRST, EPOLLIN, "echo");
    char buf[16] = {0};
    TRY(read(c, buf, sizeof buf));
    printf("read \"%s\"\n", buf);
    TRY(shutdown(c, SHUT_WR));
    wait_for(ep, FIRST, EPOLLRDHUP, "server's FIN");
    TRY(read(c, buf, sizeof buf));
    TRY(epoll_ctl(ep, EPOLL_CTL_DEL, c, NULL));
    TRY(epoll_ctl(ep, EPOLL_CTL_DEL, c, NULL));
    /* The second socket, never in the set once connected: no event. */
    struct epoll_event out[4];
    TRY(epoll_wait(ep, out, 4, 200));
    TRY(close(c));
    TRY(close(d));
    TRY(close(ep));
    printf("done\n");
    return 0;
}
