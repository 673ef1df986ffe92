/*
 * control_plane_src: the steady multicast source of bench/control_plane.py.
 *
 *   control_plane_src IFACE SRC_MAC SRC_IP GROUP RATE
 *
 * Sends one Ethernet frame (IPv4/UDP to GROUP, port 5000 -> 5000, TTL 8) every 1/RATE
 * seconds out of IFACE through an AF_PACKET socket, paced on CLOCK_MONOTONIC with absolute
 * sleeps. The 32-byte payload is "SCLB", a big-endian 64-bit sequence number (from 0), the
 * big-endian 64-bit CLOCK_REALTIME nanoseconds just before the send, and zeros; IP and UDP
 * checksums are computed here, so nothing is left to "hardware". If the
 * process falls more than 5 ms behind its schedule (a noisy machine), it does not burst to
 * catch up: it restarts the schedule and counts a late reset.
 *
 * Prints "ready" once the socket is open; on SIGTERM or SIGINT prints one JSON line
 * {"sent", "send_errors", "late_resets", "elapsed_s"} and exits 0. Exits 1 on setup errors.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PAYLOAD_LEN 32
#define FRAME_LEN (14 + 20 + 8 + PAYLOAD_LEN)
#define PORT 5000
/* Falling further behind than this restarts the schedule instead of bursting. */
#define MAX_LAG_NS 5000000LL

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

static void die(const char *what) {
    fprintf(stderr, "control_plane_src: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* One's-complement sum of len bytes (big-endian 16-bit words), not yet folded. */
static uint32_t sum16(const uint8_t *p, size_t len, uint32_t acc) {
    for (size_t i = 0; i + 1 < len; i += 2)
        acc += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (len & 1)
        acc += (uint32_t)(p[len - 1] << 8);
    return acc;
}

static uint16_t fold(uint32_t acc) {
    while (acc >> 16)
        acc = (acc & 0xffff) + (acc >> 16);
    return (uint16_t)~acc;
}

static int64_t now_ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void put_be64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: control_plane_src IFACE SRC_MAC SRC_IP GROUP RATE\n");
        return 1;
    }
    const char *iface = argv[1];
    unsigned mac[6];
    struct in_addr src, grp;
    long rate = strtol(argv[5], NULL, 10);
    if (sscanf(argv[2], "%x:%x:%x:%x:%x:%x", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4],
               &mac[5]) != 6 ||
        inet_pton(AF_INET, argv[3], &src) != 1 || inet_pton(AF_INET, argv[4], &grp) != 1 ||
        rate <= 0 || rate > 1000000) {
        fprintf(stderr, "control_plane_src: bad arguments\n");
        return 1;
    }
    int ifindex = (int)if_nametoindex(iface);
    if (ifindex == 0)
        die(iface);

    /* Fixed part of the frame. */
    uint8_t f[FRAME_LEN];
    memset(f, 0, sizeof f);
    const uint8_t *g = (const uint8_t *)&grp.s_addr;
    uint8_t dst_mac[6] = {0x01, 0x00, 0x5e, (uint8_t)(g[1] & 0x7f), g[2], g[3]};
    memcpy(f, dst_mac, 6);
    for (int i = 0; i < 6; i++)
        f[6 + i] = (uint8_t)mac[i];
    f[12] = 0x08; /* IPv4 */
    uint8_t *ip = f + 14;
    ip[0] = 0x45;
    uint16_t ip_len = 20 + 8 + PAYLOAD_LEN;
    ip[2] = ip_len >> 8;
    ip[3] = ip_len & 0xff;
    ip[6] = 0x40; /* DF */
    ip[8] = 8;    /* TTL */
    ip[9] = 17;   /* UDP */
    memcpy(ip + 12, &src.s_addr, 4);
    memcpy(ip + 16, &grp.s_addr, 4);
    uint16_t ip_sum = fold(sum16(ip, 20, 0));
    ip[10] = ip_sum >> 8;
    ip[11] = ip_sum & 0xff;
    uint8_t *udp = ip + 20;
    uint16_t udp_len = 8 + PAYLOAD_LEN;
    udp[0] = PORT >> 8;
    udp[1] = PORT & 0xff;
    udp[2] = PORT >> 8;
    udp[3] = PORT & 0xff;
    udp[4] = udp_len >> 8;
    udp[5] = udp_len & 0xff;
    uint8_t *payload = udp + 8;
    memcpy(payload, "SCLB", 4);
    /* Pseudo-header sum: addresses, protocol, UDP length. */
    uint32_t pseudo = sum16(ip + 12, 8, 0) + 17 + udp_len;

    int fd = socket(AF_PACKET, SOCK_RAW, 0); /* protocol 0: send only, receive nothing */
    if (fd < 0)
        die("socket(AF_PACKET)");
    struct sockaddr_ll to;
    memset(&to, 0, sizeof to);
    to.sll_family = AF_PACKET;
    to.sll_ifindex = ifindex;
    to.sll_halen = 6;
    memcpy(to.sll_addr, dst_mac, 6);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    if (sigaction(SIGTERM, &sa, NULL) || sigaction(SIGINT, &sa, NULL))
        die("sigaction");
    /* Wake up on time: the default 50 us timer slack is as long as the frame interval. */
    if (prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0))
        die("prctl(PR_SET_TIMERSLACK)");

    printf("ready\n");
    fflush(stdout);

    const int64_t period = 1000000000LL / rate;
    uint64_t seq = 0, errors = 0, late = 0;
    int64_t start = now_ns(CLOCK_MONOTONIC), next = start;
    while (!stop) {
        put_be64(payload + 4, seq);
        put_be64(payload + 12, (uint64_t)now_ns(CLOCK_REALTIME));
        udp[6] = udp[7] = 0;
        uint16_t udp_sum = fold(sum16(udp, udp_len, pseudo));
        if (udp_sum == 0)
            udp_sum = 0xffff; /* 0 means "no checksum" in UDP */
        udp[6] = udp_sum >> 8;
        udp[7] = udp_sum & 0xff;
        if (sendto(fd, f, FRAME_LEN, 0, (struct sockaddr *)&to, sizeof to) != FRAME_LEN)
            errors++;
        seq++;

        next += period;
        int64_t now = now_ns(CLOCK_MONOTONIC);
        if (now - next > MAX_LAG_NS) {
            late++;
            next = now;
        }
        struct timespec ts = {.tv_sec = next / 1000000000LL, .tv_nsec = next % 1000000000LL};
        /* EINTR (a signal) ends the sleep early; the loop then checks stop. */
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    }
    printf("{\"sent\": %llu, \"send_errors\": %llu, \"late_resets\": %llu, \"elapsed_s\": %.3f}\n",
           (unsigned long long)seq, (unsigned long long)errors, (unsigned long long)late,
           (double)(now_ns(CLOCK_MONOTONIC) - start) / 1e9);
    return 0;
}
