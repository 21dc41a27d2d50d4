/* A fixed sequence of hooked calls with no stdio (whose buffering would add
 * calls of its own), for the SLUICE_TRACE test: each call must show up as
 * exactly one trace line, in order. */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int copy = dup(fd);
    close(fd);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(copy, (struct sockaddr *)&a, sizeof a);
    listen(copy, 1);
    char byte = 'x';
    write(1, &byte, 1);
    close(copy);
    close(copy);
    return 0;
}
