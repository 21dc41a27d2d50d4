/* poll/ppoll/select/pselect over mixed sets: sockets, a pipe, an eventfd, a
 * regular file; invalid descriptors, timeouts with the time left. */
#include "oracle.h"
#include <sys/eventfd.h>
#include <sys/select.h>

static void show_poll(const char *label, struct pollfd *p, int n, int r, int e) {
    if (r < 0) {
        printf("%s: -1 %s\n", label, errname(e));
        return;
    }
    printf("%s: %d", label, r);
    for (int i = 0; i < n; i++) printf(" [%d]%#x", i, p[i].revents);
    printf("\n");
}

static void show_sets(const char *label, int r, int e, fd_set *rd, fd_set *wr, int max) {
    if (r < 0) {
        printf("%s: -1 %s\n", label, errname(e));
        return;
    }
    printf("%s: %d read{", label, r);
    for (int fd = 0; fd < max; fd++)
        if (FD_ISSET(fd, rd)) printf(" %d", fd);
    printf(" } write{");
    for (int fd = 0; fd < max; fd++)
        if (FD_ISSET(fd, wr)) printf(" %d", fd);
    printf(" }\n");
}

int main(void) {
    oracle_init();
    char buf[16];
    int p[2];
    MUST(pipe(p));
    int efd = MUST(eventfd(0, 0));
    int file = MUST(open("/dev/null", O_RDONLY));
    struct sockaddr_in addr;
    int l = listener(&addr, 0);
    int c, s;
    connected_pair(l, addr, &c, &s);
    printf("fds: pipe %d %d eventfd %d file %d listener %d client %d server %d\n", p[0], p[1], efd, file, l, c, s);

    struct pollfd set[] = {
        {.fd = p[0], .events = POLLIN}, {.fd = p[1], .events = POLLOUT}, {.fd = efd, .events = POLLIN},
        {.fd = file, .events = POLLIN}, {.fd = l, .events = POLLIN},     {.fd = c, .events = POLLIN | POLLOUT},
        {.fd = s, .events = POLLIN | POLLRDHUP},
    };
    int n = sizeof set / sizeof set[0];
    errno = 0;
    int r = poll(set, (nfds_t)n, 0);
    show_poll("poll idle", set, n, r, errno);

    MUST(write(p[1], "x", 1));
    uint64_t one = 1;
    MUST(write(efd, &one, sizeof one));
    MUST(write(c, "hi", 2));
    struct pollfd ready = {.fd = s, .events = POLLIN};
    MUST(poll(&ready, 1, 1000));
    errno = 0;
    r = poll(set, (nfds_t)n, 1000);
    show_poll("poll ready", set, n, r, errno);

    MUST(shutdown(c, SHUT_WR));
    struct pollfd fin = {.fd = s, .events = POLLRDHUP};
    MUST(poll(&fin, 1, 1000));
    sigset_t mask;
    sigemptyset(&mask);
    struct timespec ts = {0, 0};
    errno = 0;
    r = ppoll(set, (nfds_t)n, &ts, &mask);
    show_poll("ppoll after shutdown", set, n, r, errno);

    /* Bad entries: a closed descriptor, a negative one (ignored). The closed
     * one is the lowest free number, so it lies inside the fd table: select
     * ignores bits past the table's size (FDSize in /proc/self/status), so a
     * high number would test the table size, not EBADF. */
    int closed = TRY(dup(c));
    TRY(close(closed));
    struct pollfd odd[] = {{.fd = closed, .events = POLLIN}, {.fd = -1, .events = POLLIN}, {.fd = c, .events = POLLOUT}};
    errno = 0;
    r = poll(odd, 3, 0);
    show_poll("poll odd", odd, 3, r, errno);
    struct pollfd *volatile nowhere = NULL;
    errno = 0;
    r = poll(nowhere, 1, 0);
    show_poll("poll NULL", NULL, 0, r, errno);

    /* A fresh socket polls as POLLOUT|POLLHUP. */
    int fresh = TRY(socket(AF_INET, SOCK_STREAM, 0));
    struct pollfd f = {.fd = fresh, .events = POLLIN | POLLOUT};
    errno = 0;
    r = poll(&f, 1, 0);
    show_poll("poll fresh", &f, 1, r, errno);

    /* select over the same descriptors. */
    fd_set rd, wr;
    int max = s > fresh ? s + 1 : fresh + 1;
    FD_ZERO(&rd);
    FD_ZERO(&wr);
    FD_SET(p[0], &rd);
    FD_SET(efd, &rd);
    FD_SET(file, &rd);
    FD_SET(l, &rd);
    FD_SET(s, &rd);
    FD_SET(c, &rd);
    FD_SET(c, &wr);
    FD_SET(p[1], &wr);
    struct timeval tv = {1, 0};
    errno = 0;
    r = select(max, &rd, &wr, NULL, &tv);
    show_sets("select", r, errno, &rd, &wr, max);

    MUST(read(p[0], buf, 1));
    MUST(read(efd, &one, sizeof one));
    char drain[8];
    read_exact(s, drain, 2);
    MUST(read(c, buf, 0));
    FD_ZERO(&rd);
    FD_ZERO(&wr);
    FD_SET(p[0], &rd);
    FD_SET(efd, &rd);
    FD_SET(l, &rd);
    tv = (struct timeval){0, 30000};
    errno = 0;
    r = select(max, &rd, &wr, NULL, &tv);
    show_sets("select timeout", r, errno, &rd, &wr, max);
    printf("time left %ld.%06ld\n", (long)tv.tv_sec, (long)tv.tv_usec);

    FD_ZERO(&rd);
    FD_ZERO(&wr);
    FD_SET(s, &rd);
    FD_SET(fresh, &wr);
    ts = (struct timespec){0, 0};
    errno = 0;
    r = pselect(max, &rd, &wr, NULL, &ts, &mask);
    show_sets("pselect", r, errno, &rd, &wr, max);

    FD_ZERO(&rd);
    FD_ZERO(&wr);
    FD_SET(closed, &rd);
    FD_SET(s, &rd);
    tv = (struct timeval){0, 0};
    errno = 0;
    int upto = (closed > s ? closed : s) + 1;
    r = select(upto, &rd, &wr, NULL, &tv);
    show_sets("select closed fd", r, errno, &rd, &wr, upto);
    tv = (struct timeval){0, -5};
    errno = 0;
    r = select(max, NULL, NULL, NULL, &tv);
    show_sets("select bad timeout", r, errno, &rd, &wr, 0);
    TRY(close(fresh));
    TRY(close(c));
    TRY(close(s));
    TRY(close(l));
    return 0;
}
