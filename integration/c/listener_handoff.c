/* A forked child that closes its copy of the listener with a connection
 * waiting: on the kernel parent and child share one socket, so the
 * connection stays queued for the parent (nginx's old workers close their
 * listeners at a reload while connections wait; the new workers take them).
 * Under the preload the child's re-created listener was given the
 * connection (it polled); its close must hand the connection back to the
 * parent, not reset it. Usage: listener_handoff PORT; prints "ready", then a
 * client connects and sends one line, which the parent answers with
 * "served". */
#include "oracle.h"

int main(int argc, char **argv) {
    oracle_init();
    if (argc != 2) {
        printf("usage: listener_handoff PORT\n");
        return 2;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1]))};
    int l = MUST(socket(AF_INET, SOCK_STREAM, 0));
    int on = 1;
    MUST(setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on));
    MUST(bind(l, (struct sockaddr *)&addr, sizeof addr));
    MUST(listen(l, 16));
    printf("ready\n");
    pid_t child = MUST(fork());
    if (child == 0) {
        /* Waits until the connection is there, then leaves without it. */
        struct pollfd p = {.fd = l, .events = POLLIN};
        int n = poll(&p, 1, 30000);
        printf("child: poll %d revents %#x\n", n, p.revents);
        TRY(close(l));
        _exit(0);
    }
    int status = 0;
    MUST(waitpid(child, &status, 0));
    printf("child exited %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    struct pollfd p = {.fd = l, .events = POLLIN};
    int n = poll(&p, 1, 10000);
    printf("parent: poll %d revents %#x\n", n, p.revents);
    /* Not its number: the preload's own descriptors (the daemon's
     * segments and doorbells) are below it. */
    int c = accept(l, NULL, NULL);
    printf("parent: accept %s\n", c >= 0 ? "ok" : errname(errno));
    if (c < 0) return 1;
    char line[64] = {0};
    size_t got = 0;
    while (got < sizeof line - 1 && (got == 0 || line[got - 1] != '\n')) {
        ssize_t r = read(c, line + got, sizeof line - 1 - got);
        if (r <= 0) {
            printf("parent: read %zd %s\n", r, errname(r < 0 ? errno : 0));
            return 1;
        }
        got += (size_t)r;
    }
    printf("parent: read %s", line);
    TRY(write(c, "served\n", 7));
    TRY(close(c));
    TRY(close(l));
    printf("done\n");
    return 0;
}
