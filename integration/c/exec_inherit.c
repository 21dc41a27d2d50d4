/* Sockets across execve: the program listens, dups the listener, connects
 * to itself, binds a socket it does not listen on, forks a client that
 * waits for a signal on a pipe, and execs itself keeping all of them. The
 * new image reports what it inherited (F_GETFD, fstat, SO_TYPE,
 * SO_ACCEPTCONN, options, O_NONBLOCK, the bound ports), listens on the
 * bound socket, lets the client go, and accepts the client's connections on
 * the inherited listener (through both of its descriptors) and on the
 * newly listening one.
 *
 * Usage: exec_inherit [IP [PORT]]: the address to listen on and connect
 * to (127.0.0.1 by default), and the listener's port (the bound socket
 * takes PORT + 1; 0, the default, lets the system choose both). Nothing
 * printed depends on ports or timing.
 *
 * Lines starting with "conn " are about the inherited *connection*, which
 * differs under the Sluice daemon (it cannot cross an exec: ENOTCONN); the
 * tests compare them apart. */
#include "oracle.h"

static struct sockaddr_in addr_of(const char *ip, unsigned short port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
        printf("FATAL bad address %s\n", ip);
        exit(99);
    }
    return a;
}

static unsigned short port_of(int fd) {
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    if (getsockname(fd, SA(a), &len) < 0) return 0;
    return ntohs(a.sin_port);
}

/* The client (forked before the exec): once released, connects to `first`
 * twice and to `second` once, and checks each answer. */
static int client(int go, const char *ip, unsigned short first, unsigned short second) {
    char c;
    if (read(go, &c, 1) != 1) return 10;
    unsigned short ports[] = {first, first, second};
    for (int i = 0; i < 3; i++) {
        struct sockaddr_in a = addr_of(ip, ports[i]);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, SA(a), sizeof a) < 0) return 20 + i;
        char buf[8] = {0};
        size_t got = 0;
        while (got < 3) {
            ssize_t n = read(fd, buf + got, 3 - got);
            if (n <= 0) return 30 + i;
            got += (size_t)n;
        }
        if (buf[0] != 'o' || buf[1] != 'k' || buf[2] != (char)('0' + i)) return 40 + i;
        close(fd);
    }
    return 0;
}

/* Waits for a connection on `l` (non-blocking or not) and answers "ok<n>". */
static void serve_one(int l, int n) {
    struct pollfd p = {.fd = l, .events = POLLIN};
    TRY(poll(&p, 1, 30000));
    printf("revents %s\n", p.revents == POLLIN ? "POLLIN" : "other");
    /* Not the descriptor number: under the daemon the new image's
     * attachment holds a few descriptors the kernel run does not have. */
    errno = 0;
    int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    printf("accept4 = %s\n", c < 0 ? errname(errno) : "ok");
    if (c < 0) return;
    char answer[3] = {'o', 'k', (char)('0' + n)};
    TRY(write(c, answer, 3));
    TRY(close(c));
}

static void describe(const char *name, int fd) {
    struct stat st;
    printf("%s: cloexec %d", name, fcntl(fd, F_GETFD));
    if (fstat(fd, &st) == 0) printf(", socket %d", S_ISSOCK(st.st_mode));
    printf("\n");
}

static int after_exec(char **argv) {
    int l = atoi(argv[2]), l2 = atoi(argv[3]), conn = atoi(argv[4]), u = atoi(argv[5]), go = atoi(argv[6]);
    unsigned short port = (unsigned short)atoi(argv[7]), uport = (unsigned short)atoi(argv[8]);
    pid_t pid = atoi(argv[9]);
    printf("exec'd\n");
    describe("listener", l);
    describe("dup", l2);
    describe("bound", u);
    describe("conn", conn);
    printf("listener: SO_TYPE %d, SO_ACCEPTCONN %d, SO_REUSEADDR %d, TCP_NODELAY %d, O_NONBLOCK %d, port %s\n",
           int_opt(l, SOL_SOCKET, SO_TYPE), int_opt(l, SOL_SOCKET, SO_ACCEPTCONN),
           int_opt(l, SOL_SOCKET, SO_REUSEADDR), int_opt(l, IPPROTO_TCP, TCP_NODELAY),
           (fcntl(l, F_GETFL) & O_NONBLOCK) != 0, port_of(l) == port ? "kept" : "changed");
    printf("dup: SO_ACCEPTCONN %d, port %s\n", int_opt(l2, SOL_SOCKET, SO_ACCEPTCONN),
           port_of(l2) == port ? "kept" : "changed");
    printf("bound: SO_TYPE %d, SO_ACCEPTCONN %d, SO_KEEPALIVE %d, port %s\n", int_opt(u, SOL_SOCKET, SO_TYPE),
           int_opt(u, SOL_SOCKET, SO_ACCEPTCONN), int_opt(u, SOL_SOCKET, SO_KEEPALIVE),
           port_of(u) == uport ? "kept" : "changed");
    /* Nothing is waiting yet: the non-blocking listener says so. */
    TRY(accept(l, NULL, NULL));
    TRY(listen(u, 4));
    printf("bound listens: SO_ACCEPTCONN %d, port %s\n", int_opt(u, SOL_SOCKET, SO_ACCEPTCONN),
           port_of(u) == uport ? "kept" : "changed");

    /* The inherited connection: usable on the kernel (nothing to read: its
     * accepted end is still open in the client, forked before the exec);
     * under Sluice it did not cross (ENOTCONN). */
    char c;
    errno = 0;
    ssize_t n = recv(conn, &c, 1, MSG_DONTWAIT);
    printf("conn recv = %zd %s\n", n, errname(n < 0 ? errno : 0));
    errno = 0;
    n = send(conn, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    printf("conn send = %zd %s\n", n, errname(n < 0 ? errno : 0));
    TRY(close(conn));

    TRY(write(go, "g", 1));
    serve_one(l, 0);
    serve_one(l2, 1);
    serve_one(u, 2);
    int status;
    MUST(waitpid(pid, &status, 0));
    printf("client exit %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    TRY(close(l));
    TRY(close(l2));
    TRY(close(u));
    printf("done\n");
    return 0;
}

int main(int argc, char **argv) {
    oracle_init();
    if (argc == 10 && strcmp(argv[1], "exec") == 0) return after_exec(argv);
    const char *ip = argc > 1 ? argv[1] : "127.0.0.1";
    int one = 1;

    int l = MUST(socket(AF_INET, SOCK_STREAM, 0));
    MUST(setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
    MUST(setsockopt(l, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
    unsigned short base = argc > 2 ? (unsigned short)atoi(argv[2]) : 0;
    struct sockaddr_in a = addr_of(ip, base);
    MUST(bind(l, SA(a), sizeof a));
    MUST(listen(l, 16));
    unsigned short port = port_of(l);
    int l2 = MUST(dup(l));

    int u = MUST(socket(AF_INET, SOCK_STREAM, 0));
    MUST(setsockopt(u, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one));
    a = addr_of(ip, base ? base + 1 : 0);
    MUST(bind(u, SA(a), sizeof a));
    unsigned short uport = port_of(u);

    struct sockaddr_in to = addr_of(ip, port);
    int conn = MUST(socket(AF_INET, SOCK_STREAM, 0));
    MUST(connect(conn, SA(to), sizeof to));
    /* The accepted end is close-on-exec (the client keeps its copy). */
    MUST(accept4(l, NULL, NULL, SOCK_CLOEXEC));
    MUST(fcntl(l, F_SETFL, O_NONBLOCK));
    int closed_at_exec = MUST(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));

    int go[2];
    MUST(pipe(go));
    pid_t pid = MUST(fork());
    if (pid == 0) {
        close(go[1]);
        _exit(client(go[0], ip, port, uport));
    }
    close(go[0]);

    char args[8][16];
    int values[] = {l, l2, conn, u, go[1], port, uport, pid};
    for (int i = 0; i < 8; i++) snprintf(args[i], sizeof args[i], "%d", values[i]);
    printf("before exec: cloexec socket %d\n", fcntl(closed_at_exec, F_GETFD));
    execl("/proc/self/exe", argv[0], "exec", args[0], args[1], args[2], args[3], args[4], args[5], args[6], args[7],
          (char *)NULL);
    printf("FATAL execl: %s\n", errname(errno));
    return 99;
}
