/* An HTTP server that execs itself while it serves, keeping its listener
 * (the way servers re-exec for an upgrade): each generation but the last
 * serves PER connections (keep-alive, one at a time, the file given on the
 * command line to every GET), then execs itself as the next generation,
 * passing the listener's descriptor number on the command line. The last
 * generation serves until SIGTERM. Connections that arrive while a
 * generation execs must wait for the next one, never be refused.
 *
 * Usage: exec_server PORT FILE GENERATIONS PER [LISTENER_FD]
 * Prints "generation G listening" once it waits for connections, and
 * "generation G served N" before it execs or exits; the last prints "done". */
#include "http_serve.h"

static char *slurp(const char *path, size_t *len) {
    int fd = MUST(open(path, O_RDONLY | O_CLOEXEC));
    struct stat st;
    MUST(fstat(fd, &st));
    char *body = malloc((size_t)st.st_size + 1);
    if (!body) exit(99);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = MUST(read(fd, body + got, (size_t)st.st_size - got));
        if (n == 0) break;
        got += (size_t)n;
    }
    close(fd);
    *len = got;
    return body;
}

int main(int argc, char **argv) {
    oracle_init();
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: exec_server PORT FILE GENERATIONS PER [LISTENER_FD]\n");
        return 2;
    }
    int generation = atoi(argv[3]), per = atoi(argv[4]);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    MUST(sigaction(SIGTERM, &sa, NULL));
    size_t len;
    char *body = slurp(argv[2], &len);

    int l;
    if (argc == 6) {
        l = atoi(argv[5]);
    } else {
        l = MUST(socket(AF_INET, SOCK_STREAM, 0));
        int one = 1;
        MUST(setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_port = htons((unsigned short)atoi(argv[1]));
        MUST(bind(l, SA(a), sizeof a));
        MUST(listen(l, 128));
    }
    /* A listener inherited across exec must still be one. */
    if (int_opt(l, SOL_SOCKET, SO_ACCEPTCONN) != 1) {
        printf("FATAL generation %d: descriptor %d is not a listener\n", generation, l);
        return 1;
    }
    printf("generation %d listening\n", generation);
    long served = 0;
    while (!stop && (generation == 0 || served < per)) {
        int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            printf("FATAL accept4: %s\n", errname(errno));
            return 1;
        }
        served++;
        serve(c, body, len);
        close(c);
    }
    printf("generation %d served %ld\n", generation, served);
    if (generation == 0) {
        close(l);
        printf("done\n");
        return 0;
    }
    char next[16], fd[16];
    snprintf(next, sizeof next, "%d", generation - 1);
    snprintf(fd, sizeof fd, "%d", l);
    execl("/proc/self/exe", argv[0], argv[1], argv[2], next, argv[4], fd, (char *)NULL);
    printf("FATAL execl: %s\n", errname(errno));
    return 1;
}
