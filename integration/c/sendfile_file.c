/* sendfile/sendfile64 from a regular file into a connected socket, with an
 * offset pointer and with the file position; a forked reader checks what
 * arrived (length and FNV-1a hash). The parent prints after the reader is
 * done, so the transcript order is fixed. */
#include "oracle.h"
#include <sys/sendfile.h>

#define FILE_SIZE 200000

static unsigned long fnv(const unsigned char *p, size_t n, unsigned long h) {
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211UL;
    return h;
}

int main(void) {
    oracle_init();
    signal(SIGPIPE, SIG_IGN);
    char path[] = "/tmp/sluice-sendfile-XXXXXX";
    int f = MUST(mkstemp(path));
    MUST(unlink(path));
    static unsigned char data[FILE_SIZE];
    for (size_t i = 0; i < FILE_SIZE; i++) data[i] = (unsigned char)(i * 7 + i / 251);
    if (write(f, data, FILE_SIZE) != FILE_SIZE) return 99;
    MUST(lseek(f, 0, SEEK_SET));
    /* What should arrive: [0, 100000) via offset, [0, 50000) via the file
     * position, then [100000, 200000) via sendfile64's offset. */
    unsigned long want = fnv(data, 100000, 14695981039346656037UL);
    want = fnv(data, 50000, want);
    want = fnv(data + 100000, 100000, want);

    struct sockaddr_in addr;
    int l = listener(&addr, 0);
    int c, s;
    connected_pair(l, addr, &c, &s);
    pid_t pid = MUST(fork());
    if (pid == 0) {
        close(c);
        static unsigned char got[FILE_SIZE * 2];
        size_t n = 0;
        ssize_t r;
        while ((r = read(s, got + n, sizeof got - n)) > 0) n += (size_t)r;
        printf("reader: %zu bytes, hash matches %d\n", n, fnv(got, n, 14695981039346656037UL) == want);
        _exit(0);
    }
    close(s);
    off_t off = 0;
    ssize_t a = sendfile(c, f, &off, 100000);
    int ea = errno;
    long pos_a = (long)lseek(f, 0, SEEK_CUR);
    ssize_t b = sendfile(c, f, NULL, 50000);
    int eb = errno;
    long pos_b = (long)lseek(f, 0, SEEK_CUR);
    off64_t off64 = 100000;
    ssize_t d = sendfile64(c, f, &off64, 1 << 20);
    int ed = errno;
    ssize_t z = sendfile(c, f, &off, 0);
    MUST(close(c));
    int status;
    MUST(waitpid(pid, &status, 0));
    show("sendfile(c, f, &off, 100000)", a, ea);
    printf("off %ld file position %ld\n", (long)off, pos_a);
    show("sendfile(c, f, NULL, 50000)", b, eb);
    printf("file position %ld\n", pos_b);
    show("sendfile64(c, f, &off64, 1 << 20)", d, ed);
    printf("off64 %lld\n", (long long)off64);
    show("sendfile(c, f, &off, 0)", z, 0);
    printf("reader exit %d\n", WEXITSTATUS(status));

    /* Into a socket that is not connected, and from a bad descriptor. */
    int fresh = TRY(socket(AF_INET, SOCK_STREAM, 0));
    off = 0;
    TRY(sendfile(fresh, f, &off, 10));
    TRY(sendfile(fresh, 999, &off, 10));
    TRY(close(fresh));
    TRY(close(f));
    TRY(close(l));
    return 0;
}
