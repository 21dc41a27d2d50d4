/* FD_CLOEXEC across exec: the exec'd image (this program again, in "child"
 * mode) reports which descriptors it inherited and what they are, and writes
 * through the inherited connection. Exec'd through execv, execl and
 * posix_spawn in turn. */
#include "oracle.h"
#include <spawn.h>

extern char **environ;

static int child(int argc, char **argv) {
    for (int i = 2; i < argc; i++) {
        int fd = atoi(argv[i]);
        struct stat st;
        int flags = fcntl(fd, F_GETFD);
        if (flags < 0) {
            printf("  child fd %d: %s\n", fd, errname(errno));
            continue;
        }
        TRY(fstat(fd, &st));
        printf("  child fd %d: open, cloexec %d, socket %d, SO_TYPE %d\n", fd, flags, S_ISSOCK(st.st_mode),
               int_opt(fd, SOL_SOCKET, SO_TYPE));
    }
    /* The last argument is the connected socket. */
    int conn = atoi(argv[argc - 1]);
    TRY(write(conn, "from-child", 10));
    return 0;
}

static void report(int s) {
    char buf[16] = {0};
    read_exact(s, buf, 10);
    printf("parent read '%s'\n", buf);
}

int main(int argc, char **argv) {
    oracle_init();
    if (argc > 1 && strcmp(argv[1], "child") == 0) return child(argc, argv);

    struct sockaddr_in addr;
    int l = listener(&addr, SOCK_CLOEXEC);
    int a = TRY(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int b = TRY(socket(AF_INET, SOCK_STREAM, 0));
    int c = TRY(socket(AF_INET, SOCK_STREAM, 0));
    TRY(fcntl(c, F_SETFD, FD_CLOEXEC));
    int one = 1;
    TRY(setsockopt(b, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one));
    int e = TRY(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    TRY(connect(e, SA(addr), sizeof addr));
    int es = TRY(accept(l, NULL, NULL));
    int d = TRY(socket(AF_INET, SOCK_STREAM, 0));
    TRY(connect(d, SA(addr), sizeof addr));
    int ds = TRY(accept(l, NULL, NULL));

    char fds[6][12];
    int list[] = {l, a, b, c, e, d};
    for (int i = 0; i < 6; i++) snprintf(fds[i], sizeof fds[i], "%d", list[i]);
    char *args[] = {argv[0], "child", fds[0], fds[1], fds[2], fds[3], fds[4], fds[5], NULL};

    printf("execv:\n");
    pid_t pid = MUST(fork());
    if (pid == 0) {
        execv("/proc/self/exe", args);
        _exit(111);
    }
    int status;
    MUST(waitpid(pid, &status, 0));
    printf("child exit %d\n", WEXITSTATUS(status));
    report(ds);

    printf("execl:\n");
    pid = MUST(fork());
    if (pid == 0) {
        execl("/proc/self/exe", argv[0], "child", fds[0], fds[1], fds[2], fds[3], fds[4], fds[5], (char *)NULL);
        _exit(111);
    }
    MUST(waitpid(pid, &status, 0));
    printf("child exit %d\n", WEXITSTATUS(status));
    report(ds);

    printf("posix_spawn:\n");
    /* The spawned image prints while the parent runs on: report after it. */
    int spawned = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, args, environ);
    MUST(waitpid(pid, &status, 0));
    printf("posix_spawn = %d, child exit %d\n", spawned, WEXITSTATUS(status));
    report(ds);

    printf("parent after spawn: b SO_KEEPALIVE %d, d SO_TYPE %d\n", int_opt(b, SOL_SOCKET, SO_KEEPALIVE),
           int_opt(d, SOL_SOCKET, SO_TYPE));
    TRY(write(d, "still-mine", 10));
    report(ds);
    TRY(execl("/nonexistent/program", "x", (char *)NULL));
    TRY(close(es));
    return 0;
}
