/* Signals interrupt blocking socket calls: accept, read, connect-less waits
 * in poll and epoll_wait return EINTR when the handler was installed without
 * SA_RESTART; SO_RCVTIMEO turns a blocking read into EAGAIN. The signal comes
 * from a one-shot interval timer while the call blocks. */
#include "oracle.h"
#include <sys/epoll.h>
#include <sys/time.h>

static volatile sig_atomic_t fired;

static void on_alarm(int sig) {
    (void)sig;
    fired++;
}

static void arm(int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    MUST(sigaction(SIGALRM, &sa, NULL));
    struct itimerval it = {.it_value = {0, 50 * 1000}};
    MUST(setitimer(ITIMER_REAL, &it, NULL));
}

int main(void) {
    oracle_init();
    char buf[8];
    struct sockaddr_in addr;
    int l = listener(&addr, 0);

    arm(0);
    TRY(accept(l, NULL, NULL));
    printf("handler ran %d\n", fired);

    int c, s;
    connected_pair(l, addr, &c, &s);
    arm(0);
    TRY(read(s, buf, sizeof buf));
    printf("handler ran %d\n", fired);

    arm(0);
    TRY(recv(s, buf, sizeof buf, MSG_WAITALL));
    printf("handler ran %d\n", fired);

    struct pollfd p = {.fd = s, .events = POLLIN};
    arm(SA_RESTART);
    TRY(poll(&p, 1, -1));
    printf("handler ran %d (poll is never restarted)\n", fired);

    int ep = MUST(epoll_create1(0));
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = s};
    MUST(epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev));
    arm(SA_RESTART);
    TRY(epoll_wait(ep, &ev, 1, -1));
    printf("handler ran %d (epoll_wait is never restarted)\n", fired);

    /* SA_RESTART restarts a read until SO_RCVTIMEO ends it with EAGAIN. */
    struct timeval tv = {0, 200 * 1000};
    TRY(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    arm(SA_RESTART);
    TRY(read(s, buf, sizeof buf));
    printf("handler ran %d\n", fired);

    /* The connection still works. */
    TRY(write(c, "ok", 2));
    TRY(read(s, buf, 2));
    TRY(close(ep));
    TRY(close(c));
    TRY(close(s));
    TRY(close(l));
    return 0;
}
