/* TCP_CORK, TCP_NODELAY and keepalive as a program sets them
 * (integration/tests/preload_tcp_options.rs). The test counts the segments
 * in the daemon's capture; this program does the socket calls and reports
 * what the application sees. stdout is unbuffered.
 *
 *   tcp_options serve PORT TOTAL COUNT
 *       (kernel side, in the peer namespace) accepts COUNT connections one
 *       after the other; reads TOTAL bytes from each, answers "k", reads to
 *       EOF and closes. Prints "listening" once it listens.
 *   tcp_options write IP PORT MODE PIECES SIZE PACE_US
 *       connects; MODE is "cork", "cork-nodelay", "more", "more-nodelay" or
 *       "nodelay"; writes PIECES writes of SIZE bytes, PACE_US microseconds
 *       apart ("more": send with MSG_MORE but the last), then clears
 *       TCP_CORK (cork modes) and waits for the server's "k", printing how
 *       long after the last call that took ("answer 1 after N ms"). Prints
 *       "port P" (its local port), the getsockopt values it checked, "done".
 *   tcp_options hold IP PORT
 *       (kernel side) listens, accepts one connection, prints "accepted",
 *       and keeps it open and silent until the client closes it (or until
 *       it is killed).
 *   tcp_options keepalive IP PORT IDLE INTVL CNT WAIT_MS
 *       connects, switches keepalive on with these parameters, prints
 *       "port P" and "keepalive on", then polls for up to WAIT_MS: "up after
 *       WAIT_MS ms" if nothing happened (the connection lives), else what
 *       read() returned ("read = -1 ETIMEDOUT after N ms"). Closes, "done".
 */
#include "oracle.h"
#include <time.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static struct sockaddr_in address(const char *ip, const char *port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)atoi(port));
    if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
        printf("FATAL bad address %s\n", ip);
        exit(99);
    }
    return a;
}

static int connected(const char *ip, const char *port) {
    struct sockaddr_in a = address(ip, port);
    int fd = MUST(socket(AF_INET, SOCK_STREAM, 0));
    MUST(connect(fd, SA(a), sizeof a));
    struct sockaddr_in local;
    socklen_t len = sizeof local;
    MUST(getsockname(fd, SA(local), &len));
    printf("port %d\n", ntohs(local.sin_port));
    return fd;
}

static void set_int(int fd, int level, int name, int value) {
    MUST(setsockopt(fd, level, name, &value, sizeof value));
}

/* getsockopt must report what was set: prints "NAME = v". */
static void check_int(int fd, int level, int name, const char *what) {
    int value = -1;
    socklen_t len = sizeof value;
    MUST(getsockopt(fd, level, name, &value, &len));
    printf("%s = %d\n", what, value);
}

static void write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = MUST(write(fd, buf, len));
        buf += n;
        len -= (size_t)n;
    }
}

static int accept_one(int listener) {
    int c = MUST(accept(listener, NULL, NULL));
    return c;
}

static int listening(const char *ip, const char *port) {
    struct sockaddr_in a = address(ip, port);
    int fd = MUST(socket(AF_INET, SOCK_STREAM, 0));
    set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    MUST(bind(fd, SA(a), sizeof a));
    MUST(listen(fd, 16));
    printf("listening\n");
    return fd;
}

static int serve(const char *port, long total, int count) {
    int l = listening("0.0.0.0", port);
    char buf[65536];
    for (int i = 0; i < count; i++) {
        int c = accept_one(l);
        long got = 0;
        while (got < total) {
            ssize_t n = MUST(read(c, buf, sizeof buf));
            if (n == 0) break;
            got += n;
        }
        printf("received %ld\n", got);
        write_all(c, "k", 1);
        while (MUST(read(c, buf, sizeof buf)) > 0) {
        }
        close(c);
    }
    close(l);
    printf("served\n");
    return 0;
}

static int write_pieces(const char *ip, const char *port, const char *mode, int pieces, int size, int pace_us) {
    int cork = strncmp(mode, "cork", 4) == 0;
    int more = strncmp(mode, "more", 4) == 0;
    int nodelay = strstr(mode, "nodelay") != NULL;
    int fd = connected(ip, port);
    if (cork) {
        set_int(fd, IPPROTO_TCP, TCP_CORK, 1);
        check_int(fd, IPPROTO_TCP, TCP_CORK, "TCP_CORK");
    }
    if (nodelay) {
        set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1);
        check_int(fd, IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY");
    }
    char *piece = malloc((size_t)size);
    if (!piece) return 99;
    memset(piece, 'x', (size_t)size);
    for (int i = 0; i < pieces; i++) {
        if (more) {
            /* send(2) MSG_MORE on every piece but the last. */
            ssize_t n = MUST(send(fd, piece, (size_t)size, i + 1 < pieces ? MSG_MORE : 0));
            if (n != size) {
                printf("FATAL short send %zd\n", n);
                return 99;
            }
        } else {
            write_all(fd, piece, (size_t)size);
        }
        if (pace_us > 0) usleep((useconds_t)pace_us);
    }
    free(piece);
    double start = now_ms();
    if (cork) {
        /* tcp(7): clearing TCP_CORK sends the pending partial frame. */
        set_int(fd, IPPROTO_TCP, TCP_CORK, 0);
        check_int(fd, IPPROTO_TCP, TCP_CORK, "TCP_CORK");
    }
    char k;
    ssize_t n = MUST(read(fd, &k, 1));
    printf("answer %zd after %.0f ms\n", n, now_ms() - start);
    close(fd);
    printf("done\n");
    return 0;
}

static int hold(const char *ip, const char *port) {
    int l = listening(ip, port);
    int c = accept_one(l);
    printf("accepted\n");
    char buf[4096];
    while (MUST(read(c, buf, sizeof buf)) > 0) {
    }
    close(c);
    close(l);
    return 0;
}

static int keepalive(const char *ip, const char *port, int idle, int intvl, int cnt, int wait_ms) {
    int fd = connected(ip, port);
    set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, idle);
    set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, intvl);
    set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, cnt);
    set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
    check_int(fd, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE");
    check_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE");
    printf("keepalive on\n");
    double start = now_ms();
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int ready = MUST(poll(&p, 1, wait_ms));
    double elapsed = now_ms() - start;
    if (ready == 0) {
        /* Nothing happened for the whole wait: the connection is up. */
        check_int(fd, SOL_SOCKET, SO_ERROR, "SO_ERROR");
        printf("up after %d ms\n", wait_ms);
    } else {
        char buf[64];
        errno = 0;
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0)
            printf("read = -1 %s after %.0f ms\n", errname(errno), elapsed);
        else
            printf("read = %zd after %.0f ms\n", n, elapsed);
    }
    close(fd);
    printf("done\n");
    return 0;
}

int main(int argc, char **argv) {
    oracle_init();
    if (argc == 5 && strcmp(argv[1], "serve") == 0) return serve(argv[2], atol(argv[3]), atoi(argv[4]));
    if (argc == 8 && strcmp(argv[1], "write") == 0)
        return write_pieces(argv[2], argv[3], argv[4], atoi(argv[5]), atoi(argv[6]), atoi(argv[7]));
    if (argc == 4 && strcmp(argv[1], "hold") == 0) return hold(argv[2], argv[3]);
    if (argc == 8 && strcmp(argv[1], "keepalive") == 0)
        return keepalive(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]), atoi(argv[6]), atoi(argv[7]));
    fprintf(stderr, "usage: see the comment at the top of tcp_options.c\n");
    return 2;
}
