/* Many threads make, dup, connect, use and close sockets at once while one
 * thread accepts and echoes: no descriptor may be confused with another
 * thread's, and every echo must come back intact. */
#include "oracle.h"
#include <pthread.h>

#define THREADS 8
#define ROUNDS 150
#define MSG_LEN 12

static struct sockaddr_in addr;

static void *serve(void *arg) {
    int l = *(int *)arg;
    long bad = 0;
    for (int i = 0; i < THREADS * ROUNDS; i++) {
        int s = accept(l, NULL, NULL);
        if (s < 0) {
            bad++;
            continue;
        }
        char buf[MSG_LEN];
        size_t got = 0;
        while (got < MSG_LEN) {
            ssize_t n = read(s, buf + got, MSG_LEN - got);
            if (n <= 0) break;
            got += (size_t)n;
        }
        if (got != MSG_LEN || write(s, buf, MSG_LEN) != MSG_LEN) bad++;
        close(s);
    }
    return (void *)bad;
}

static void *client(void *arg) {
    long id = (long)arg, bad = 0;
    for (int round = 0; round < ROUNDS; round++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) {
            bad++;
            continue;
        }
        int use = fd;
        if (round % 3 == 0) {
            use = dup(fd);
            close(fd);
        }
        int one = 1;
        if (setsockopt(use, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) bad++;
        if (connect(use, SA(addr), sizeof addr) < 0) {
            bad++;
            close(use);
            continue;
        }
        char msg[MSG_LEN + 1], back[MSG_LEN];
        snprintf(msg, sizeof msg, "%03ld:%07d", id, round);
        if (write(use, msg, MSG_LEN) != MSG_LEN) bad++;
        size_t got = 0;
        while (got < MSG_LEN) {
            ssize_t n = read(use, back + got, MSG_LEN - got);
            if (n <= 0) break;
            got += (size_t)n;
        }
        if (got != MSG_LEN || memcmp(msg, back, MSG_LEN) != 0) bad++;
        if (int_opt(use, SOL_SOCKET, SO_TYPE) != SOCK_STREAM) bad++;
        if (int_opt(use, IPPROTO_TCP, TCP_NODELAY) != 1) bad++;
        if (close(use) != 0) bad++;
    }
    return (void *)bad;
}

int main(void) {
    oracle_init();
    int l = listener(&addr, 0);
    pthread_t server, clients[THREADS];
    MUST(pthread_create(&server, NULL, serve, &l) == 0 ? 0 : -1);
    for (long i = 0; i < THREADS; i++) MUST(pthread_create(&clients[i], NULL, client, (void *)i) == 0 ? 0 : -1);
    long bad = 0;
    for (int i = 0; i < THREADS; i++) {
        void *r;
        pthread_join(clients[i], &r);
        bad += (long)r;
    }
    void *r;
    pthread_join(server, &r);
    printf("%d clients x %d rounds: client failures %ld, server failures %ld\n", THREADS, ROUNDS, bad, (long)r);
    /* Every descriptor was given back: the next socket takes the lowest number. */
    TRY(socket(AF_INET, SOCK_STREAM, 0));
    return 0;
}
