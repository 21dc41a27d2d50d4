/* A forked child and its parent's connection to a remote echo server: the
 * child's use of the inherited connection and its close must leave the
 * parent's connection working. Usage: fork_remote IP PORT. Prints what the
 * child saw (its send's result) and the parent's echo after the child ended. */
#include "oracle.h"
#include <arpa/inet.h>
#include <netinet/in.h>

int main(int argc, char **argv) {
    oracle_init();
    if (argc != 3) {
        fprintf(stderr, "usage: fork_remote IP PORT\n");
        return 2;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &addr.sin_addr);
    int c = MUST(socket(AF_INET, SOCK_STREAM, 0));
    MUST(connect(c, SA(addr), sizeof addr));
    char buf[16] = {0};
    MUST(send(c, "one", 3, 0));
    read_exact(c, buf, 3);
    printf("parent before fork: %s\n", buf);
    pid_t pid = MUST(fork());
    if (pid == 0) {
        errno = 0;
        ssize_t n = send(c, "x", 1, MSG_NOSIGNAL);
        printf("child send: %s\n", n == 1 ? "sent" : errname(errno));
        printf("child close: %d\n", close(c));
        _exit(0);
    }
    int status = 0;
    MUST(waitpid(pid, &status, 0));
    printf("child exit: %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    MUST(send(c, "two", 3, 0));
    memset(buf, 0, sizeof buf);
    read_exact(c, buf, 3);
    printf("parent after child: %s\n", buf);
    MUST(close(c));
    printf("done\n");
    return 0;
}
