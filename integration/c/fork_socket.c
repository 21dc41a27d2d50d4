/* Sockets across fork: a socket made before the fork and connected in the
 * child; a listener whose connections the child accepts; a connection the
 * parent closes and the child keeps using; a listener the child closes
 * while the parent keeps accepting (redis's BGSAVE child). Children print
 * nothing: they report through sockets and exit codes, which the parent
 * prints after waiting, so the transcript does not depend on scheduling. */
#include "oracle.h"

static int wait_child(pid_t pid) {
    int status;
    MUST(waitpid(pid, &status, 0));
    return WIFEXITED(status) ? WEXITSTATUS(status) : 200 + WTERMSIG(status);
}

int main(void) {
    oracle_init();
    char buf[32];
    struct sockaddr_in addr;
    int l = listener(&addr, 0);

    /* 1: created before the fork, connected and used in the child. */
    int c = TRY(socket(AF_INET, SOCK_STREAM, 0));
    int one = 1;
    TRY(setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
    pid_t pid = MUST(fork());
    if (pid == 0) {
        if (connect(c, SA(addr), sizeof addr) < 0) _exit(1);
        if (int_opt(c, IPPROTO_TCP, TCP_NODELAY) != 1) _exit(2);
        if (write(c, "child-connected", 15) != 15) _exit(3);
        char r[8];
        if (read(c, r, 5) != 5 || memcmp(r, "reply", 5) != 0) _exit(4);
        _exit(0);
    }
    int s = TRY(accept(l, NULL, NULL));
    memset(buf, 0, sizeof buf);
    read_exact(s, buf, 15);
    TRY(write(s, "reply", 5));
    int code = wait_child(pid);
    printf("1: parent read '%s', child exit %d\n", buf, code);
    /* The parent's copy keeps the connection open until it is closed too. */
    TRY(close(c));
    TRY(read(s, buf, sizeof buf));
    TRY(close(s));

    /* 2: the child accepts on the inherited listener. */
    pid = MUST(fork());
    if (pid == 0) {
        int t = accept(l, NULL, NULL);
        if (t < 0) _exit(1);
        char r[8];
        if (read(t, r, 4) != 4) _exit(2);
        if (write(t, r, 4) != 4) _exit(3);
        _exit(0);
    }
    c = TRY(socket(AF_INET, SOCK_STREAM, 0));
    TRY(connect(c, SA(addr), sizeof addr));
    TRY(write(c, "echo", 4));
    memset(buf, 0, sizeof buf);
    read_exact(c, buf, 4);
    code = wait_child(pid);
    printf("2: echoed '%s', child exit %d\n", buf, code);
    TRY(read(c, buf, sizeof buf));
    TRY(close(c));

    /* 3: the parent closes its copy of a connection; the child uses it. */
    c = TRY(socket(AF_INET, SOCK_STREAM, 0));
    TRY(connect(c, SA(addr), sizeof addr));
    s = TRY(accept(l, NULL, NULL));
    int gate[2];
    MUST(pipe(gate));
    pid = MUST(fork());
    if (pid == 0) {
        char g;
        if (read(gate[0], &g, 1) != 1) _exit(1);
        if (write(s, "after-parent-close", 18) != 18) _exit(2);
        _exit(0);
    }
    TRY(close(s));
    TRY(write(gate[1], "g", 1));
    memset(buf, 0, sizeof buf);
    read_exact(c, buf, 18);
    code = wait_child(pid);
    printf("3: read '%s', child exit %d\n", buf, code);
    TRY(read(c, buf, sizeof buf));
    TRY(close(c));
    TRY(close(gate[0]));
    TRY(close(gate[1]));

    /* 4: the child closes the inherited listener; the parent still accepts. */
    pid = MUST(fork());
    if (pid == 0) {
        if (close(l) != 0) _exit(1);
        _exit(0);
    }
    code = wait_child(pid);
    printf("4: child closed the listener, exit %d\n", code);
    c = TRY(socket(AF_INET, SOCK_STREAM, 0));
    TRY(connect(c, SA(addr), sizeof addr));
    s = TRY(accept(l, NULL, NULL));
    TRY(write(c, "ok", 2));
    memset(buf, 0, sizeof buf);
    read_exact(s, buf, 2);
    printf("4: parent accepted and read '%s'\n", buf);

    /* 5: vfork + _exit leaves everything as it was. */
    pid = vfork();
    if (pid == 0) _exit(7);
    printf("5: vfork child exit %d\n", wait_child(pid));
    TRY(write(s, "still", 5));
    read_exact(c, buf, 5);
    TRY(close(c));
    TRY(close(s));
    TRY(close(l));
    return 0;
}
