/*
 * What the benchmark's C helpers (mcgen.c, ceiling.c, cfwd.c) share: error exits, the
 * monotonic clock, the Internet checksum, and a packet socket bound to one interface for
 * sending. Each program defines PROG (its name, for messages) before including this file.
 * Everything is static inline, so a program that uses only part of it compiles without
 * unused-function warnings.
 */
#ifndef SNOOPCAST_BENCH_PACKET_COMMON_H
#define SNOOPCAST_BENCH_PACKET_COMMON_H

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>

#define HDR_LEN (14 + 20 + 8) /* Ethernet + IPv4 + UDP */
#define SEQ_LEN 8              /* the payload starts with a 64-bit sequence number */

static inline void die(const char *what)
{
    fprintf(stderr, PROG ": %s: %s\n", what, strerror(errno));
    exit(1);
}

static inline double now_s(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        die("clock_gettime");
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Ones' complement sum of 16-bit big-endian words, not folded. */
static inline uint32_t sum16(const uint8_t *p, size_t len, uint32_t sum)
{
    for (; len > 1; p += 2, len -= 2)
        sum += (uint32_t)p[0] << 8 | p[1];
    if (len)
        sum += (uint32_t)p[0] << 8;
    return sum;
}

static inline uint16_t fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* Writes IPv4 (no options, DF, identification 0, header checksum), UDP (source and
 * destination port `port`, checksum field 0) and `size` bytes of payload (a zero sequence
 * number, then a filler pattern) at `ip`. Returns the UDP checksum's sum over the pseudo
 * header, the UDP header and the payload, not folded. */
static inline uint32_t build_ip_udp(uint8_t *ip, struct in_addr src, struct in_addr dst,
                             uint16_t port, int ttl, size_t size)
{
    uint8_t *udp = ip + 20, *payload = ip + 28;
    uint16_t ip_len = (uint16_t)(20 + 8 + size), udp_len = (uint16_t)(8 + size);
    memset(ip, 0, 20);
    ip[0] = 0x45;
    ip[2] = ip_len >> 8, ip[3] = ip_len & 0xff;
    ip[6] = 0x40; /* DF */
    ip[8] = (uint8_t)ttl;
    ip[9] = 17;
    memcpy(ip + 12, &src.s_addr, 4);
    memcpy(ip + 16, &dst.s_addr, 4);
    uint16_t ip_csum = fold(sum16(ip, 20, 0));
    ip[10] = ip_csum >> 8, ip[11] = ip_csum & 0xff;
    udp[0] = port >> 8, udp[1] = port & 0xff;
    udp[2] = port >> 8, udp[3] = port & 0xff;
    udp[4] = udp_len >> 8, udp[5] = udp_len & 0xff;
    udp[6] = udp[7] = 0;
    for (size_t i = 0; i < size; i++)
        payload[i] = i < SEQ_LEN ? 0 : (uint8_t)i;
    /* Pseudo header (source, destination, protocol, UDP length) + UDP header + payload. */
    return sum16(udp, udp_len, sum16(ip + 12, 8, 0) + 17 + udp_len);
}

/* Stores the folded UDP checksum of `sum` at `udp` (0 goes out as 0xffff: 0 means "no
 * checksum" in UDP over IPv4). */
static inline void put_udp_checksum(uint8_t *udp, uint32_t sum)
{
    uint16_t csum = fold(sum);
    if (csum == 0)
        csum = 0xffff;
    udp[6] = csum >> 8, udp[7] = csum & 0xff;
}

/* A packet socket bound to `iface` (protocol 0: it only sends, and receives nothing), so
 * sendmmsg needs no per-message address. The interface's MAC goes to `mac`. */
static inline int bound_packet_socket(const char *iface, uint8_t mac[6])
{
    int fd = socket(AF_PACKET, SOCK_RAW, 0);
    if (fd < 0)
        die("socket(AF_PACKET)");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", iface);
    if (ioctl(fd, SIOCGIFHWADDR, &ifr) != 0)
        die("ioctl(SIOCGIFHWADDR)");
    memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
    struct sockaddr_ll sll = {.sll_family = AF_PACKET};
    sll.sll_ifindex = (int)if_nametoindex(iface);
    if (sll.sll_ifindex == 0)
        die("if_nametoindex");
    if (bind(fd, (struct sockaddr *)&sll, sizeof sll) != 0)
        die("bind");
    return fd;
}

#endif
