/* fcntl and ioctl flags of sockets before and after their decision: status
 * flags are shared by dups, descriptor flags are not. */
#include "oracle.h"
#include <sys/ioctl.h>

static void flags(const char *label, int fd) {
    printf("%s: GETFL %#x GETFD %d\n", label, fcntl(fd, F_GETFL), fcntl(fd, F_GETFD));
}

int main(void) {
    oracle_init();
    struct sockaddr_in addr;
    int l = listener(&addr, 0);

    int a = TRY(socket(AF_INET, SOCK_STREAM, 0));
    flags("fresh", a);
    int b = TRY(dup(a));
    TRY(fcntl(a, F_SETFL, O_NONBLOCK));
    flags("a after SETFL", a);
    flags("dup b", b);
    TRY(fcntl(a, F_SETFD, FD_CLOEXEC));
    flags("a after SETFD", a);
    flags("dup b", b);
    int off = 0, on = 1;
    TRY(ioctl(b, FIONBIO, &off));
    flags("a after FIONBIO(b, 0)", a);
    TRY(ioctl(b, FIONBIO, &on));
    TRY(ioctl(b, FIOCLEX));
    flags("b after FIOCLEX", b);
    TRY(ioctl(b, FIONCLEX));
    flags("b after FIONCLEX", b);
    TRY(fcntl(a, F_SETFL, O_NONBLOCK | O_APPEND));
    flags("a with O_APPEND", a);
    TRY(fcntl(a, F_SETFL, O_NONBLOCK));

    /* Decide through the non-blocking socket: the flags carry over. */
    TRY(connect(a, SA(addr), sizeof addr));
    struct pollfd p = {.fd = a, .events = POLLOUT};
    TRY(poll(&p, 1, 5000));
    flags("a connected", a);
    flags("b connected", b);
    int s = TRY(accept(l, NULL, NULL));
    char buf[8];
    TRY(read(b, buf, sizeof buf));
    TRY(ioctl(b, FIONBIO, &off));
    flags("a blocking again", a);
    TRY(write(s, "ab", 2));
    read_exact(a, buf, 2);
    TRY(fcntl(a, F_GETOWN));
    TRY(fcntl(a, F_SETOWN, getpid()) == 0);
    TRY(fcntl(a, F_GETOWN) == getpid());
    TRY(fcntl(a, 12345));

    /* Commands a fresh socket cannot answer without becoming the kernel's. */
    int c = TRY(socket(AF_INET, SOCK_STREAM, 0));
    TRY(fcntl(c, F_GETOWN));
    TRY(fcntl(c, F_SETOWN, getpid()) == 0);
    flags("c", c);
    int d = TRY(socket(AF_INET, SOCK_STREAM, 0));
    TRY(fcntl(d, F_GETPIPE_SZ));
    TRY(ioctl(d, TIOCGWINSZ, buf));
    TRY(close(a));
    TRY(close(b));
    TRY(close(c));
    TRY(close(d));
    TRY(close(s));
    TRY(close(l));
    return 0;
}
