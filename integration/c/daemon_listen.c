/* daemon(3) after listen, twice, as nginx-style servers daemonize: the
 * daemonized process still owns the listener and serves a client it forks.
 * The original parent exits inside daemon() without printing anything, so the
 * transcript comes from one process at a time. */
#include "oracle.h"

int main(void) {
    oracle_init();
    struct sockaddr_in addr;
    int l = listener(&addr, 0);
    printf("listening on fd %d\n", l);
    int r = daemon(1, 1);
    printf("daemon(1, 1) = %d, session leader %d\n", r, getsid(0) == getpid());
    r = daemon(0, 1);
    char cwd[64] = {0};
    printf("daemon(0, 1) = %d, cwd %s\n", r, getcwd(cwd, sizeof cwd) ? cwd : "?");

    pid_t pid = MUST(fork());
    if (pid == 0) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (c < 0 || connect(c, SA(addr), sizeof addr) < 0) _exit(1);
        if (write(c, "ping", 4) != 4) _exit(2);
        char b[4];
        if (read(c, b, 4) != 4 || memcmp(b, "pong", 4) != 0) _exit(3);
        _exit(0);
    }
    int s = TRY(accept(l, NULL, NULL));
    char buf[8] = {0};
    read_exact(s, buf, 4);
    TRY(write(s, "pong", 4));
    int status;
    MUST(waitpid(pid, &status, 0));
    printf("served '%s', client exit %d\n", buf, WEXITSTATUS(status));
    TRY(close(s));
    TRY(close(l));
    return 0;
}
