/* getsockopt/setsockopt and friends on a fresh (unconnected) TCP socket, and
 * that the options survive the socket's first bind/listen. */
#include "oracle.h"
#include <sys/ioctl.h>
#include <linux/sockios.h>

static void get_int(int fd, int level, int name, const char *label) {
    int v = -7;
    socklen_t len = sizeof v;
    errno = 0;
    int r = getsockopt(fd, level, name, &v, &len);
    if (r < 0)
        printf("%s: -1 %s\n", label, errname(errno));
    else
        printf("%s: %d (len %u)\n", label, v, len);
}

#define GET(fd, level, name) get_int(fd, level, name, #name)

static void show_all(int fd) {
    GET(fd, SOL_SOCKET, SO_TYPE);
    GET(fd, SOL_SOCKET, SO_ERROR);
    GET(fd, SOL_SOCKET, SO_DOMAIN);
    GET(fd, SOL_SOCKET, SO_PROTOCOL);
    GET(fd, SOL_SOCKET, SO_ACCEPTCONN);
    GET(fd, SOL_SOCKET, SO_RCVBUF);
    GET(fd, SOL_SOCKET, SO_SNDBUF);
    GET(fd, SOL_SOCKET, SO_REUSEADDR);
    GET(fd, SOL_SOCKET, SO_REUSEPORT);
    GET(fd, SOL_SOCKET, SO_KEEPALIVE);
    GET(fd, IPPROTO_TCP, TCP_NODELAY);
    GET(fd, IPPROTO_TCP, TCP_CORK);
    GET(fd, IPPROTO_TCP, TCP_KEEPIDLE);
    GET(fd, IPPROTO_TCP, TCP_KEEPINTVL);
    GET(fd, IPPROTO_TCP, TCP_KEEPCNT);
    GET(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT);
    GET(fd, IPPROTO_IP, IP_TOS);
    struct linger lg = {-1, -1};
    socklen_t len = sizeof lg;
    TRY(getsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, &len));
    printf("SO_LINGER %d %d len %u\n", lg.l_onoff, lg.l_linger, len);
    struct timeval tv = {-1, -1};
    len = sizeof tv;
    TRY(getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &len));
    printf("SO_RCVTIMEO %ld.%06ld\n", (long)tv.tv_sec, (long)tv.tv_usec);
    char cc[16] = {0};
    len = sizeof cc;
    TRY(getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, &len));
    printf("TCP_CONGESTION '%s'\n", cc);
}

int main(void) {
    oracle_init();
    signal(SIGPIPE, SIG_IGN);
    int fd = TRY(socket(AF_INET, SOCK_STREAM, 0));
    show_all(fd);

    /* Short and odd lengths. */
    short tiny = -1;
    socklen_t len = sizeof tiny;
    TRY(getsockopt(fd, SOL_SOCKET, SO_TYPE, &tiny, &len));
    printf("SO_TYPE in 2 bytes: %d len %u\n", tiny, len);
    len = 0;
    TRY(getsockopt(fd, SOL_SOCKET, SO_TYPE, NULL, &len));
    len = (socklen_t)-1;
    TRY(getsockopt(fd, SOL_SOCKET, SO_TYPE, &tiny, &len));

    /* Settings, good and bad. */
    int one = 1, big = 1000, zero = 0;
    TRY(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
    TRY(setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &big, sizeof big));
    TRY(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big));
    TRY(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big));
    TRY(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
    TRY(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &zero, sizeof zero));
    TRY(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
    TRY(setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &big, sizeof big));
    TRY(setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &zero, sizeof zero));
    TRY(setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &one, sizeof one));
    TRY(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, 2));
    TRY(setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, "bogus", 5));
    TRY(setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, "reno", 4));
    TRY(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, NULL, sizeof one));
    struct linger lg = {1, 0};
    TRY(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    struct timeval tv = {2, 500000};
    TRY(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    int tos = 0x10;
    TRY(setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof tos));
    show_all(fd);

    /* Other calls on the fresh socket. */
    struct sockaddr_in a;
    memset(&a, 0xff, sizeof a);
    len = sizeof a;
    TRY(getsockname(fd, SA(a), &len));
    printf("getsockname len %u family %d port %d addr %s\n", len, a.sin_family, ntohs(a.sin_port), inet_ntoa(a.sin_addr));
    struct sockaddr *volatile no_addr = NULL;
    socklen_t *volatile no_len = NULL;
    len = sizeof a;
    TRY(getsockname(fd, no_addr, &len));
    len = 0;
    TRY(getsockname(fd, no_addr, &len));
    printf("getsockname into nothing: len %u\n", len);
    TRY(getsockname(fd, SA(a), no_len));
    len = sizeof a;
    TRY(getpeername(fd, SA(a), &len));
    int q = -1;
    TRY(ioctl(fd, FIONREAD, &q));
    printf("FIONREAD %d\n", q);
    TRY(ioctl(fd, SIOCOUTQ, &q));
    printf("SIOCOUTQ %d\n", q);
    struct stat st;
    TRY(fstat(fd, &st));
    printf("fstat mode %o is-sock %d\n", st.st_mode, S_ISSOCK(st.st_mode));

    /* The options must survive the decision at listen. */
    TRY(listen(fd, 4));
    show_all(fd);
    TRY(ioctl(fd, FIONREAD, &q));
    TRY(close(fd));

    /* Options nobody stores: the socket becomes the kernel's to answer. */
    fd = TRY(socket(AF_INET, SOCK_STREAM, 0));
    len = sizeof tiny;
    TRY(getsockopt(fd, SOL_SOCKET, 9999, &tiny, &len));
    TRY(getsockopt(fd, 9999, 1, &tiny, &len));
    TRY(setsockopt(fd, SOL_SOCKET, 9999, &one, sizeof one));
    struct tcp_info info;
    len = sizeof info;
    TRY(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len));
    printf("TCP_INFO state %d len %u\n", info.tcpi_state, len);
    TRY(close(fd));

    /* Calls that need a connection, on fresh sockets. */
    char buf[8];
    fd = TRY(socket(AF_INET, SOCK_STREAM, 0));
    TRY(read(fd, buf, sizeof buf));
    TRY(close(fd));
    fd = TRY(socket(AF_INET, SOCK_STREAM, 0));
    TRY(send(fd, "x", 1, MSG_NOSIGNAL));
    TRY(close(fd));
    fd = TRY(socket(AF_INET, SOCK_STREAM, 0));
    TRY(shutdown(fd, SHUT_RDWR));
    TRY(close(fd));
    fd = TRY(socket(AF_INET, SOCK_STREAM, 0));
    TRY(accept(fd, NULL, NULL));
    TRY(close(fd));
    return 0;
}
