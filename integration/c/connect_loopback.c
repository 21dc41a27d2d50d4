/* socket/bind/listen/accept/connect over loopback: blocking and non-blocking
 * connect (EINPROGRESS, then POLLOUT and SO_ERROR), refused connects, data
 * both ways, half-close, addresses on both ends. */
#include "oracle.h"

int main(void) {
    oracle_init();
    signal(SIGPIPE, SIG_IGN);
    char buf[64];

    int l = TRY(socket(AF_INET, SOCK_STREAM, 0));
    int one = 1;
    TRY(setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
    struct sockaddr_in a = loopback(0);
    TRY(bind(l, SA(a), sizeof a));
    TRY(bind(l, SA(a), sizeof a));
    TRY(listen(l, 16));
    socklen_t len = sizeof a;
    TRY(getsockname(l, SA(a), &len));
    printf("listener len %u family %d port-set %d addr %s\n", len, a.sin_family, a.sin_port != 0, inet_ntoa(a.sin_addr));
    printf("SO_ACCEPTCONN %d SO_REUSEADDR %d\n", int_opt(l, SOL_SOCKET, SO_ACCEPTCONN), int_opt(l, SOL_SOCKET, SO_REUSEADDR));

    /* Blocking connect. */
    int c = TRY(socket(AF_INET, SOCK_STREAM, IPPROTO_TCP));
    TRY(connect(c, SA(a), sizeof a));
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    int s = TRY(accept(l, SA(peer), &plen));
    printf("peer len %u family %d addr %s\n", plen, peer.sin_family, inet_ntoa(peer.sin_addr));
    struct sockaddr_in mine, theirs;
    socklen_t mlen = sizeof mine, tlen = sizeof theirs;
    TRY(getsockname(c, SA(mine), &mlen));
    TRY(getpeername(c, SA(theirs), &tlen));
    printf("client port is accepted peer port: %d, client peer is listener: %d\n", mine.sin_port == peer.sin_port,
           theirs.sin_port == a.sin_port && theirs.sin_addr.s_addr == a.sin_addr.s_addr);
    socklen_t short_len = 4;
    TRY(getpeername(s, SA(theirs), &short_len));
    printf("short getpeername len %u\n", short_len);
    TRY(connect(c, SA(a), sizeof a));

    /* Data, peeking, non-blocking reads, half-close. */
    TRY(write(c, "hello", 5));
    memset(buf, 0, sizeof buf);
    TRY(read(s, buf, sizeof buf));
    printf("server read '%s'\n", buf);
    TRY(send(s, "world", 5, 0));
    memset(buf, 0, sizeof buf);
    TRY(recv(c, buf, 3, MSG_PEEK));
    printf("peeked '%s'\n", buf);
    memset(buf, 0, sizeof buf);
    TRY(recv(c, buf, sizeof buf, MSG_WAITALL | MSG_DONTWAIT));
    printf("client read '%s'\n", buf);
    TRY(recv(c, buf, sizeof buf, MSG_DONTWAIT));
    TRY(shutdown(c, SHUT_WR));
    TRY(read(s, buf, sizeof buf));
    TRY(write(s, "bye", 3));
    memset(buf, 0, sizeof buf);
    read_exact(c, buf, 3);
    printf("client read '%s' after its shutdown\n", buf);
    TRY(send(c, "x", 1, MSG_NOSIGNAL));
    TRY(close(s));
    TRY(read(c, buf, sizeof buf));
    TRY(close(c));
    TRY(close(c));

    /* Non-blocking connect. */
    int n = TRY(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    TRY(connect(n, SA(a), sizeof a));
    struct pollfd p = {.fd = n, .events = POLLOUT};
    TRY(poll(&p, 1, 5000));
    printf("connected revents %#x\n", p.revents);
    int err = -1;
    socklen_t elen = sizeof err;
    TRY(getsockopt(n, SOL_SOCKET, SO_ERROR, &err, &elen));
    printf("SO_ERROR %s len %u\n", errname(err), elen);
    TRY(connect(n, SA(a), sizeof a));
    s = TRY(accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC));
    printf("accept4 flags: fl-nonblock %d fd-cloexec %d\n", (fcntl(s, F_GETFL) & O_NONBLOCK) != 0,
           fcntl(s, F_GETFD) == FD_CLOEXEC);
    TRY(read(s, buf, sizeof buf));
    TRY(fcntl(l, F_SETFL, O_NONBLOCK));
    TRY(accept(l, NULL, NULL));
    TRY(accept4(l, NULL, NULL, 0x4000));
    TRY(close(s));
    TRY(close(n));

    /* Refused: a bound socket that does not listen answers with RST. */
    int r = MUST(socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_in ra = loopback(0);
    MUST(bind(r, SA(ra), sizeof ra));
    socklen_t rlen = sizeof ra;
    MUST(getsockname(r, SA(ra), &rlen));
    int m = TRY(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    TRY(connect(m, SA(ra), sizeof ra));
    p = (struct pollfd){.fd = m, .events = POLLOUT | POLLIN};
    TRY(poll(&p, 1, 5000));
    printf("refused revents %#x\n", p.revents);
    elen = sizeof err;
    TRY(getsockopt(m, SOL_SOCKET, SO_ERROR, &err, &elen));
    printf("SO_ERROR %s\n", errname(err));
    TRY(getsockopt(m, SOL_SOCKET, SO_ERROR, &err, &elen));
    printf("SO_ERROR again %s\n", errname(err));
    TRY(close(m));
    m = TRY(socket(AF_INET, SOCK_STREAM, 0));
    TRY(connect(m, SA(ra), sizeof ra));
    TRY(connect(m, SA(ra), sizeof ra));
    TRY(close(m));

    /* Addresses the kernel judges: wrong family, short length. */
    m = TRY(socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_in6 six;
    memset(&six, 0, sizeof six);
    six.sin6_family = AF_INET6;
    TRY(connect(m, SA(six), sizeof six));
    TRY(bind(m, SA(a), 8));
    TRY(close(m));
    TRY(close(r));
    TRY(close(l));
    return 0;
}
