/* Free ports for tests that start daemons: below the kernel's ephemeral range, so an outgoing
 * connection of a concurrently running test cannot take a port between the check and the
 * daemon's bind. For tests only (Criterion assertions inside). */
#ifndef DFS_TESTS_TEST_PORTS_H
#define DFS_TESTS_TEST_PORTS_H

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

/* A port that is free now, below the kernel's ephemeral range (32768 and up by default), so
 * that no outgoing connection of a concurrently running test can take it before the master
 * binds it. Candidates start at a point derived from the pid, so parallel test processes
 * search different places; a port handed out earlier by this process is not reused. */
static inline uint16_t free_port(void)
{
    static unsigned next;
    if (next == 0)
        next = (unsigned)getpid() * 7919u;
    for (int tries = 0; tries < 12000; tries++) {
        uint16_t port = (uint16_t)(20000 + next++ % 12000);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                                .sin_port = htons(port)};
        cr_assert_geq(fd, 0);
        int ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        close(fd);
        if (ok)
            return port;
    }
    cr_assert_fail("no free port in 20000-31999");
    return 0;
}

#endif
