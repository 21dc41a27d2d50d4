/* SLUICE_FALLBACK=fail with no reachable backend: sockets the policy sends to
 * Sluice fail their deciding call with ENETUNREACH, those it sends to the
 * kernel work, and a failed decision leaves the socket usable. */
#include "oracle.h"

int main(void) {
    oracle_init();
    int a = TRY(socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_in any;
    memset(&any, 0, sizeof any);
    any.sin_family = AF_INET;
    TRY(bind(a, SA(any), sizeof any));
    TRY(listen(a, 1));
    struct sockaddr_in far;
    memset(&far, 0, sizeof far);
    far.sin_family = AF_INET;
    far.sin_port = htons(80);
    far.sin_addr.s_addr = htonl(0xC0000201); /* 192.0.2.1, TEST-NET-1 */
    TRY(connect(a, SA(far), sizeof far));
    /* Still a candidate: a loopback bind goes to the kernel. */
    struct sockaddr_in lo = loopback(0);
    TRY(bind(a, SA(lo), sizeof lo));
    TRY(listen(a, 1));
    printf("SO_ACCEPTCONN %d\n", int_opt(a, SOL_SOCKET, SO_ACCEPTCONN));
    TRY(close(a));
    return 0;
}
