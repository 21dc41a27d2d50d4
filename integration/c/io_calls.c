/* The data calls besides read/write: readv/writev, recvfrom/sendto with
 * addresses on a stream socket, recvmsg/sendmsg, recvmmsg/sendmmsg,
 * MSG_PEEK/MSG_WAITALL/MSG_TRUNC/MSG_DONTWAIT, FIONREAD, splice through a
 * pipe in both directions, EPIPE with and without MSG_NOSIGNAL. */
#include "oracle.h"
#include <sys/ioctl.h>
#include <sys/uio.h>

static volatile sig_atomic_t sigpipes;
static void on_sigpipe(int sig) {
    (void)sig;
    sigpipes++;
}

int main(void) {
    oracle_init();
    signal(SIGPIPE, on_sigpipe);
    char buf[64], a[8], b[8];
    struct sockaddr_in addr;
    int l = listener(&addr, 0);
    int c, s;
    connected_pair(l, addr, &c, &s);

    struct iovec out[] = {{"one-", 4}, {"two-", 4}, {"three", 5}};
    TRY(writev(c, out, 3));
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    struct iovec in[] = {{a, 4}, {b, 4}};
    TRY(readv(s, in, 2));
    printf("readv '%s' '%s'\n", a, b);
    memset(buf, 0, sizeof buf);
    TRY(recv(s, buf, 5, MSG_WAITALL));
    printf("rest '%s'\n", buf);
    /* Counts the compiler must not see (it rejects them statically). */
    volatile int negative = -1, too_many = 5000;
    TRY(writev(c, out, 0));
    TRY(writev(c, out, negative));
    TRY(readv(s, in, too_many));

    /* Addresses on a connected stream socket: ignored going out, none back. */
    struct sockaddr_in from;
    memset(&from, 0xff, sizeof from);
    socklen_t flen = sizeof from;
    struct sockaddr_in elsewhere = loopback(9);
    TRY(sendto(c, "to", 2, 0, SA(elsewhere), sizeof elsewhere));
    TRY(recvfrom(s, buf, sizeof buf, 0, SA(from), &flen));
    printf("recvfrom addrlen %u family %#x\n", flen, from.sin_family);

    /* sendmsg/recvmsg. */
    struct iovec mv[] = {{"msg-", 4}, {"data", 4}};
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = mv;
    m.msg_iovlen = 2;
    TRY(sendmsg(c, &m, 0));
    char name[32];
    char control[64];
    memset(buf, 0, sizeof buf);
    struct iovec rv = {buf, sizeof buf};
    memset(&m, 0, sizeof m);
    m.msg_name = name;
    m.msg_namelen = sizeof name;
    m.msg_iov = &rv;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    m.msg_flags = 0x7fff;
    TRY(recvmsg(s, &m, 0));
    printf("recvmsg '%s' namelen %u controllen %zu flags %#x\n", buf, m.msg_namelen, (size_t)m.msg_controllen, m.msg_flags);

    /* sendmmsg/recvmmsg: TCP concatenates, the first recv takes what is there. */
    struct iovec v1 = {"first", 5}, v2 = {"second", 6};
    struct mmsghdr mm[2];
    memset(mm, 0, sizeof mm);
    mm[0].msg_hdr.msg_iov = &v1;
    mm[0].msg_hdr.msg_iovlen = 1;
    mm[1].msg_hdr.msg_iov = &v2;
    mm[1].msg_hdr.msg_iovlen = 1;
    TRY(sendmmsg(c, mm, 2, 0));
    printf("sendmmsg lens %u %u\n", mm[0].msg_len, mm[1].msg_len);
    char r1[16] = {0}, r2[16] = {0};
    struct iovec w1 = {r1, 5}, w2 = {r2, 6};
    struct mmsghdr rm[2];
    memset(rm, 0, sizeof rm);
    rm[0].msg_hdr.msg_iov = &w1;
    rm[0].msg_hdr.msg_iovlen = 1;
    rm[1].msg_hdr.msg_iov = &w2;
    rm[1].msg_hdr.msg_iovlen = 1;
    struct pollfd p = {.fd = s, .events = POLLIN};
    MUST(poll(&p, 1, 1000));
    int have = 0;
    for (int spins = 0; have < 11; spins++) {
        MUST(ioctl(s, FIONREAD, &have));
        if (spins > 10 * 1000 * 1000) {
            printf("FATAL: the second message never arrived\n");
            return 99;
        }
    }
    printf("FIONREAD %d\n", have);
    TRY(recvmmsg(s, rm, 2, MSG_WAITFORONE, NULL));
    printf("recvmmsg '%s' %u '%s' %u\n", r1, rm[0].msg_len, r2, rm[1].msg_len);
    TRY(recvmmsg(s, rm, 2, MSG_DONTWAIT, NULL));

    /* Flags. */
    TRY(send(c, "abcdef", 6, 0));
    memset(buf, 0, sizeof buf);
    MUST(poll(&p, 1, 1000));
    TRY(recv(s, buf, 2, MSG_PEEK));
    TRY(recv(s, NULL, 3, MSG_TRUNC));
    memset(buf, 0, sizeof buf);
    TRY(recv(s, buf, sizeof buf, 0));
    printf("after TRUNC '%s'\n", buf);
    TRY(recv(s, buf, sizeof buf, MSG_DONTWAIT));
    TRY(recv(s, buf, sizeof buf, MSG_OOB));
    TRY(read(s, NULL, 0));

    /* splice: socket -> pipe -> socket. */
    int pp[2];
    MUST(pipe(pp));
    TRY(write(c, "spliced!", 8));
    MUST(poll(&p, 1, 1000));
    TRY(splice(s, NULL, pp[1], NULL, 8, 0));
    TRY(splice(pp[0], NULL, s, NULL, 8, 0));
    memset(buf, 0, sizeof buf);
    read_exact(c, buf, 8);
    printf("round trip '%s'\n", buf);
    TRY(splice(s, NULL, c, NULL, 8, 0));
    loff_t off = 0;
    TRY(splice(pp[0], &off, s, NULL, 8, SPLICE_F_NONBLOCK));
    TRY(splice(pp[0], NULL, s, NULL, 8, SPLICE_F_NONBLOCK));

    /* EPIPE: SIGPIPE unless MSG_NOSIGNAL. */
    TRY(shutdown(c, SHUT_WR));
    TRY(send(c, "x", 1, MSG_NOSIGNAL));
    printf("sigpipes %d\n", sigpipes);
    TRY(write(c, "x", 1));
    printf("sigpipes %d\n", sigpipes);
    TRY(close(pp[0]));
    TRY(close(pp[1]));
    TRY(close(c));
    TRY(close(s));
    TRY(close(l));
    return 0;
}
