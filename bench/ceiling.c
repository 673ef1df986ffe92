/*
 * ceiling: the most copies/s a program can put on the downstream interface, for the snoopcast
 * benchmark. No capture, no lookup: it pre-builds the frames snoopcast would emit for one
 * multicast packet (destination = each subscriber's MAC, source = the interface's MAC, the
 * same IPv4/UDP packet as mcgen's, with a correct UDP checksum) and sends them round-robin
 * to the subscribers with sendmmsg through an AF_PACKET socket, as fast as it can.
 *
 *   ceiling --iface IF --macs MAC[,MAC...] --source IP --group G --duration S
 *           [--size BYTES] [--port P] [--ttl T] [--batch B]
 *
 * On exit it prints one JSON line:
 *   {"sent": frames handed to the kernel, "refused": of these, refused by the receiving
 *    backlog (ENOBUFS), "elapsed": seconds, "receivers": n, "size": payload, "frame_len": bytes}
 * Any other failing system call ends it with a message and exit status 1.
 */
#define _GNU_SOURCE
#define PROG "ceiling"
#include <arpa/inet.h>
#include <getopt.h>
#include <unistd.h>

#include "packet_common.h"

#define MAX_RECEIVERS 4096
#define MAX_BATCH 256

static void usage(const char *msg)
{
    fprintf(stderr, "ceiling: %s\nusage: ceiling --iface IF --macs MAC[,MAC...] --source IP "
                    "--group G --duration S [--size BYTES] [--port P] [--ttl T] [--batch B]\n",
            msg);
    exit(2);
}

/* Parses "aa:bb:cc:dd:ee:ff,..." into `macs`; returns how many. */
static int parse_macs(char *list, uint8_t (*macs)[6])
{
    int n = 0;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        unsigned int b[6];
        char end;
        if (n == MAX_RECEIVERS)
            usage("too many MACs");
        if (sscanf(tok, "%x:%x:%x:%x:%x:%x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
                   &end) != 6)
            usage("bad MAC in --macs");
        for (int i = 0; i < 6; i++) {
            if (b[i] > 0xff)
                usage("bad MAC in --macs");
            macs[n][i] = (uint8_t)b[i];
        }
        n++;
    }
    return n;
}

int main(int argc, char **argv)
{
    const char *iface = NULL;
    static uint8_t macs[MAX_RECEIVERS][6];
    struct in_addr source = {0}, group = {0};
    int nmacs = 0, ttl = 16, batch = 64, have_source = 0, have_group = 0;
    double duration = -1;
    long size = 1316, port = 5000;

    static const struct option opts[] = {
        {"iface", required_argument, 0, 'i'}, {"macs", required_argument, 0, 'm'},
        {"source", required_argument, 0, 's'}, {"group", required_argument, 0, 'g'},
        {"duration", required_argument, 0, 'd'}, {"size", required_argument, 0, 'z'},
        {"port", required_argument, 0, 'p'}, {"ttl", required_argument, 0, 't'},
        {"batch", required_argument, 0, 'b'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'i': iface = optarg; break;
        case 'm': nmacs = parse_macs(optarg, macs); break;
        case 's': have_source = inet_pton(AF_INET, optarg, &source) == 1; break;
        case 'g': have_group = inet_pton(AF_INET, optarg, &group) == 1; break;
        case 'd': duration = atof(optarg); break;
        case 'z': size = atol(optarg); break;
        case 'p': port = atol(optarg); break;
        case 't': ttl = atoi(optarg); break;
        case 'b': batch = atoi(optarg); break;
        default: usage("unknown option");
        }
    }
    if (!iface || nmacs == 0 || !have_source || !have_group || duration <= 0)
        usage("--iface, --macs, --source, --group and --duration are required");
    if (size < 8 || size > 65507 - 20 || port < 1 || port > 65535 || ttl < 1 || ttl > 255 ||
        batch < 1 || batch > MAX_BATCH)
        usage("bad --size, --port, --ttl or --batch");

    uint8_t src_mac[6];
    int fd = bound_packet_socket(iface, src_mac);

    /* One frame per receiver, all carrying the same packet. */
    size_t frame_len = HDR_LEN + (size_t)size;
    uint8_t *frames = malloc((size_t)nmacs * frame_len);
    struct mmsghdr *msgs = calloc(MAX_BATCH, sizeof *msgs);
    struct iovec *iov = calloc(MAX_BATCH, sizeof *iov);
    if (!frames || !msgs || !iov)
        die("malloc");
    for (int r = 0; r < nmacs; r++) {
        uint8_t *f = frames + (size_t)r * frame_len;
        memcpy(f, macs[r], 6);
        memcpy(f + 6, src_mac, 6);
        f[12] = 0x08, f[13] = 0x00;
        /* The packet mcgen sends with sequence number 0. */
        uint8_t *ip = f + 14;
        put_udp_checksum(ip + 20, build_ip_udp(ip, source, group, (uint16_t)port, ttl, (size_t)size));
    }
    for (int i = 0; i < batch; i++) {
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        iov[i].iov_len = frame_len;
    }

    uint64_t next = 0, sent = 0, refused = 0; /* next: index of the next copy, round-robin */
    double start = now_s();
    while (now_s() - start < duration) {
        for (int i = 0; i < batch; i++)
            iov[i].iov_base = frames + (size_t)((next + (uint64_t)i) % (uint64_t)nmacs) * frame_len;
        /* sendmmsg stops at the first failing frame: -1 (ENOBUFS: refused by the receiving
         * backlog) if it was the first, else the count before it. Count it and go on. */
        int done = sendmmsg(fd, msgs, (unsigned)batch, 0);
        if (done < 0 && errno != ENOBUFS)
            die("sendmmsg");
        if (done < batch) {
            done = done < 0 ? 1 : done + 1;
            refused++;
        }
        sent += (uint64_t)done;
        next += (uint64_t)done;
    }
    double elapsed = now_s() - start;
    if (close(fd) != 0)
        die("close");
    printf("{\"sent\": %llu, \"refused\": %llu, \"elapsed\": %.6f, \"receivers\": %d, "
           "\"size\": %ld, \"frame_len\": %zu}\n",
           (unsigned long long)sent, (unsigned long long)refused, elapsed, nmacs, size,
           frame_len);
    return 0;
}
