/* Descriptor numbers and mappings through socket/close/dup/dup2/dup3/
 * F_DUPFD/close_range: sockets must take the numbers the kernel gives, and a
 * dup must stay the same socket. */
#include "oracle.h"
#include <linux/close_range.h>

static void what(int fd) {
    struct stat st;
    if (fstat(fd, &st) < 0) {
        printf("fd %d: %s\n", fd, errname(errno));
        return;
    }
    const char *kind = S_ISSOCK(st.st_mode) ? "socket" : S_ISFIFO(st.st_mode) ? "fifo" : S_ISCHR(st.st_mode) ? "chr" : "other";
    printf("fd %d: %s SO_TYPE %d cloexec %d\n", fd, kind, int_opt(fd, SOL_SOCKET, SO_TYPE), fcntl(fd, F_GETFD));
}

int main(void) {
    oracle_init();
    int a = TRY(socket(AF_INET, SOCK_STREAM, 0));
    int b = TRY(socket(AF_INET, SOCK_STREAM, 0));
    int p[2];
    TRY(pipe(p));
    printf("pipe %d %d\n", p[0], p[1]);
    TRY(close(a));
    int c = TRY(socket(AF_INET, SOCK_STREAM, 0));
    int d = TRY(dup(c));
    int e = TRY(dup2(b, 20));
    what(b);
    what(e);
    TRY(dup2(p[0], c));
    what(c);
    what(d);
    TRY(dup3(d, 30, O_CLOEXEC));
    what(30);
    TRY(fcntl(d, F_DUPFD, 10));
    TRY(fcntl(d, F_DUPFD_CLOEXEC, 10));
    what(11);
    TRY(dup2(d, d));
    TRY(dup3(d, d, 0));
    TRY(dup3(d, 31, 12345));
    TRY(close(d));
    what(10);
    TRY(dup2(e, 10));
    what(10);
    TRY(close(10));
    what(e);
    TRY(close(999));
    TRY(dup(999));
    TRY(dup2(999, 40));
    TRY(dup2(b, -1));

    /* A dup'ed socket decided through either number is one socket. */
    struct sockaddr_in addr;
    int l = listener(&addr, 0);
    int x = TRY(socket(AF_INET, SOCK_STREAM, 0));
    int y = TRY(dup(x));
    TRY(connect(y, SA(addr), sizeof addr));
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    TRY(getpeername(x, SA(peer), &plen));
    printf("x connected to listener: %d\n", peer.sin_port == addr.sin_port);
    int s = TRY(accept(l, NULL, NULL));
    TRY(write(x, "via-x", 5));
    char buf[16] = {0};
    read_exact(s, buf, 5);
    printf("server got '%s'\n", buf);
    TRY(close(x));
    TRY(write(y, "via-y", 5));
    read_exact(s, buf, 5);
    printf("server got '%s'\n", buf);
    TRY(close(y));
    TRY(read(s, buf, sizeof buf));

    /* Flags given to socket() itself. */
    int f = TRY(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    printf("flags GETFL %#x GETFD %d\n", fcntl(f, F_GETFL), fcntl(f, F_GETFD));
    TRY(socket(AF_INET, SOCK_STREAM | 0x100, 0));
    TRY(socket(AF_INET, SOCK_DGRAM, IPPROTO_TCP));

    /* close_range over sockets, then the lowest numbers come back. */
    TRY(close_range(10, 40, CLOSE_RANGE_CLOEXEC));
    what(20);
    TRY(close_range(b, 40, 0));
    what(20);
    what(30);
    int g = TRY(socket(AF_INET, SOCK_STREAM, 0));
    int h = TRY(open("/dev/null", O_RDONLY));
    what(g);
    what(h);
    TRY(close(g));
    TRY(close(h));
    return 0;
}
