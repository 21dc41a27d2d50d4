/* Readiness of a TCP connection to a remote echo server mixed with a pipe and
 * an eventfd: epoll (LT, ET, ONESHOT, RDHUP), poll and select over the mixed
 * set, timeouts and EINTR. Every line it prints depends only on the kernel's
 * (or Sluice's) socket semantics, not on timing: each wait that expects the
 * peer's answer waits for it with a deadline. Usage: remote_mix IP PORT
 * (the server echoes what it gets and closes after the client's FIN). */
#include "oracle.h"
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/time.h>
#include <time.h>

enum { PIPE = 1, EVENT = 2, CLIENT = 3, INNER = 4 };
static const char *names[] = {"?", "pipe", "eventfd", "client", "inner"};

static int cmp(const void *a, const void *b) {
    const struct epoll_event *x = a, *y = b;
    return (x->data.u64 > y->data.u64) - (x->data.u64 < y->data.u64);
}

static void wait_on(int ep, int timeout, const char *label) {
    struct epoll_event ev[8];
    errno = 0;
    int n = epoll_wait(ep, ev, 8, timeout);
    if (n < 0) {
        printf("%s: -1 %s\n", label, errname(errno));
        return;
    }
    qsort(ev, (size_t)n, sizeof ev[0], cmp);
    printf("%s: %d", label, n);
    for (int i = 0; i < n; i++) printf(" %s=%#x", names[ev[i].data.u64], ev[i].events);
    printf("\n");
}

/* Waits (up to 10 s) until the client is reported; prints its events. */
static void wait_client(int ep, const char *label) {
    struct epoll_event ev[8];
    for (int tries = 0; tries < 100; tries++) {
        int n = epoll_wait(ep, ev, 8, 100);
        for (int i = 0; i < n; i++) {
            if (ev[i].data.u64 == CLIENT) {
                printf("%s: client=%#x\n", label, ev[i].events);
                return;
            }
        }
    }
    printf("%s: client never reported\n", label);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void ctl(int ep, int op, int fd, unsigned events, int tag, const char *label) {
    struct epoll_event ev = {.events = events, .data.u64 = (unsigned long)tag};
    errno = 0;
    int r = epoll_ctl(ep, op, fd, &ev);
    printf("%s = %d %s\n", label, r, r < 0 ? errname(errno) : "");
}

static int ioctl_nread(int fd) {
    int n = -1;
    return ioctl(fd, FIONREAD, &n) < 0 ? -1 : n;
}

static void on_alarm(int sig) { (void)sig; }

static void arm_alarm(void) {
    struct itimerval it = {.it_value = {.tv_usec = 100000}};
    setitimer(ITIMER_REAL, &it, NULL);
}

int main(int argc, char **argv) {
    oracle_init();
    if (argc != 3) {
        fprintf(stderr, "usage: remote_mix IP PORT\n");
        return 2;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &addr.sin_addr);
    struct sigaction sa = {.sa_handler = on_alarm};
    sigaction(SIGALRM, &sa, NULL);
    char buf[64];

    int c = MUST(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    TRY(connect(c, SA(addr), sizeof addr));
    struct pollfd w = {.fd = c, .events = POLLOUT};
    TRY(poll(&w, 1, 10000));
    printf("connect revents %#x, SO_ERROR %d\n", w.revents, int_opt(c, SOL_SOCKET, SO_ERROR));

    int p[2];
    MUST(pipe(p));
    int efd = MUST(eventfd(0, EFD_NONBLOCK));
    int ep = MUST(epoll_create1(EPOLL_CLOEXEC));
    ctl(ep, EPOLL_CTL_ADD, p[0], EPOLLIN, PIPE, "add pipe LT");
    ctl(ep, EPOLL_CTL_ADD, efd, EPOLLIN | EPOLLET, EVENT, "add eventfd ET");
    ctl(ep, EPOLL_CTL_ADD, c, EPOLLIN | EPOLLET | EPOLLRDHUP, CLIENT, "add client ET|RDHUP");
    ctl(ep, EPOLL_CTL_ADD, c, EPOLLIN, CLIENT, "add client again");
    ctl(ep, EPOLL_CTL_MOD, c, EPOLLIN | EPOLLEXCLUSIVE, CLIENT, "mod client EXCLUSIVE");
    wait_on(ep, 0, "idle");

    TRY(write(p[1], "p", 1));
    uint64_t one = 1;
    TRY(write(efd, &one, sizeof one));
    wait_on(ep, 1000, "pipe+eventfd");
    wait_on(ep, 0, "again (pipe LT, eventfd ET)");
    TRY(read(p[0], buf, 1));
    wait_on(ep, 0, "drained");

    /* Edge-triggered session. */
    TRY(send(c, "hello", 5, 0));
    wait_client(ep, "echo ET");
    wait_on(ep, 0, "ET not again");
    memset(buf, 0, sizeof buf);
    read_exact(c, buf, 5);
    printf("got %s\n", buf);
    TRY(recv(c, buf, sizeof buf, MSG_DONTWAIT));

    /* Level-triggered session. */
    ctl(ep, EPOLL_CTL_MOD, c, EPOLLIN, CLIENT, "mod client LT");
    TRY(send(c, "x", 1, MSG_NOSIGNAL));
    wait_client(ep, "echo LT");
    wait_on(ep, 0, "LT again");
    TRY(recv(c, buf, 1, MSG_PEEK));
    TRY(ioctl_nread(c));
    TRY(recv(c, buf, 1, 0));
    wait_on(ep, 0, "LT after read");

    /* One-shot. */
    ctl(ep, EPOLL_CTL_MOD, c, EPOLLIN | EPOLLONESHOT, CLIENT, "mod client ONESHOT");
    TRY(send(c, "y", 1, 0));
    wait_client(ep, "echo ONESHOT");
    wait_on(ep, 0, "ONESHOT disabled");
    ctl(ep, EPOLL_CTL_MOD, c, EPOLLIN, CLIENT, "re-arm");
    wait_on(ep, 0, "re-armed");
    TRY(recv(c, buf, 1, 0));

    /* poll and select over the mixed set. */
    TRY(write(p[1], "q", 1));
    struct pollfd set[4] = {
        {.fd = c, .events = POLLIN}, {.fd = p[0], .events = POLLIN},
        {.fd = efd, .events = POLLIN}, {.fd = c, .events = POLLOUT},
    };
    TRY(poll(set, 4, 1000));
    printf("poll revents %#x %#x %#x %#x\n", set[0].revents, set[1].revents, set[2].revents, set[3].revents);
    fd_set rd, wr;
    FD_ZERO(&rd);
    FD_ZERO(&wr);
    FD_SET(c, &rd);
    FD_SET(p[0], &rd);
    FD_SET(c, &wr);
    struct timeval tv = {.tv_sec = 1};
    int maxfd = c > p[0] ? c : p[0];
    TRY(select(maxfd + 1, &rd, &wr, NULL, &tv));
    printf("select rd c=%d pipe=%d wr c=%d\n", FD_ISSET(c, &rd), FD_ISSET(p[0], &rd), FD_ISSET(c, &wr));
    TRY(read(p[0], buf, 1));

    /* Timeouts are honoured (nothing ready: the client is idle). */
    ctl(ep, EPOLL_CTL_DEL, efd, 0, EVENT, "del eventfd");
    double t0 = now();
    wait_on(ep, 200, "epoll timeout");
    double t1 = now();
    printf("epoll waited enough: %d\n", t1 - t0 >= 0.19 && t1 - t0 < 3.0);
    struct pollfd idle[2] = {{.fd = c, .events = POLLIN}, {.fd = p[0], .events = POLLIN}};
    TRY(poll(idle, 2, 200));
    double t2 = now();
    printf("poll waited enough: %d\n", t2 - t1 >= 0.19 && t2 - t1 < 3.0);

    /* A signal interrupts blocking waits. */
    arm_alarm();
    wait_on(ep, -1, "epoll EINTR");
    arm_alarm();
    TRY(poll(idle, 2, -1));

    /* The instance nested in another one, and polled itself. */
    int outer = MUST(epoll_create1(EPOLL_CLOEXEC));
    ctl(outer, EPOLL_CTL_ADD, ep, EPOLLIN, INNER, "nest");
    wait_on(outer, 0, "outer idle");
    TRY(send(c, "n", 1, 0));
    wait_on(outer, 10000, "outer sees inner");
    struct pollfd pe = {.fd = ep, .events = POLLIN};
    TRY(poll(&pe, 1, 10000));
    printf("poll on inner %#x\n", pe.revents);
    TRY(recv(c, buf, 1, 0));
    TRY(poll(&pe, 1, 0));
    wait_on(outer, 0, "outer drained");
    TRY(close(outer));

    /* The peer closes after our FIN: RDHUP, then EOF. */
    ctl(ep, EPOLL_CTL_MOD, c, EPOLLIN | EPOLLRDHUP | EPOLLET, CLIENT, "mod client ET|RDHUP");
    TRY(shutdown(c, SHUT_WR));
    wait_client(ep, "peer closed");
    TRY(recv(c, buf, sizeof buf, 0));
    TRY(send(c, "z", 1, MSG_NOSIGNAL));
    TRY(close(c));
    TRY(close(ep));
    printf("done\n");
    return 0;
}
