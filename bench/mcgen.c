/*
 * mcgen: IPv4 UDP multicast traffic generator for the snoopcast benchmark.
 *
 *   mcgen --iface IF --source IP --group G [--group G2 ...] --rate PPS --duration S
 *         [--size BYTES] [--port P] [--ttl T] [--batch B]
 *
 * Sends pre-built Ethernet/IPv4/UDP frames (destination MAC 01:00:5e + the group's low 23
 * bits, source MAC that of IF) through an AF_PACKET socket with sendmmsg, round-robin over
 * the groups. The UDP payload starts with a 64-bit big-endian sequence number; the UDP
 * checksum is computed in full (veth would otherwise pass the frame on with it unfilled),
 * per frame by adding the sequence number to a pre-computed sum.
 *
 * --rate PPS paces the frames with a token bucket on CLOCK_MONOTONIC and short nanosleeps;
 * --rate 0 sends as fast as the socket takes them.
 *
 * Like a wire, the generator must not be slowed down by the receiver. Over veth, a frame stays
 * charged to the sending socket until the receiving side has processed it, so a busy box would
 * block sendmmsg once the socket's send buffer is full: the buffer is made large (64 MB).
 * A frame the receiving side's backlog refuses fails with ENOBUFS; it was offered and lost by
 * the receiver, so it is counted in "sent" (and in "refused").
 *
 * On exit it prints one JSON line:
 *   {"sent": frames offered, "refused": of these, refused by the receiving backlog (ENOBUFS),
 *    "elapsed": seconds, "rate": offered rate, "size": payload, "frame_len": bytes, "groups": n}
 * Any other failing system call ends it with a message and exit status 1.
 */
#define _GNU_SOURCE
#define PROG "mcgen"
#include <arpa/inet.h>
#include <getopt.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "packet_common.h"

#define MAX_GROUPS 16
#define MAX_BATCH 256

static void usage(const char *msg)
{
    fprintf(stderr, "mcgen: %s\nusage: mcgen --iface IF --source IP --group G [--group G...] "
                    "--rate PPS (0 = flat out) --duration S [--size BYTES] [--port P] [--ttl T] "
                    "[--batch B]\n", msg);
    exit(2);
}

/* One group's frame template and the UDP checksum sum of everything but the sequence number. */
struct group {
    uint8_t frame[HDR_LEN + 65507];
    uint32_t base_sum;
};

/* Builds the frame for group `dst` with sequence number 0 and records its checksum base. */
static void build(struct group *g, const uint8_t src_mac[6], struct in_addr src,
                  struct in_addr dst, uint16_t port, int ttl, size_t size)
{
    uint8_t *f = g->frame;
    uint32_t d = ntohl(dst.s_addr);
    /* Ethernet: the group MAC 01:00:5e + low 23 bits of the group. */
    const uint8_t dst_mac[6] = {0x01, 0x00, 0x5e, (d >> 16) & 0x7f, (d >> 8) & 0xff, d & 0xff};
    memcpy(f, dst_mac, 6);
    memcpy(f + 6, src_mac, 6);
    f[12] = 0x08, f[13] = 0x00;
    g->base_sum = build_ip_udp(f + 14, src, dst, port, ttl, size);
}

/* Writes sequence number `seq` into a copy of the template and completes its UDP checksum. */
static void stamp(const struct group *g, uint8_t *out, size_t frame_len, uint64_t seq)
{
    memcpy(out, g->frame, frame_len);
    uint8_t *udp = out + 34, *payload = out + HDR_LEN;
    uint32_t sum = g->base_sum;
    for (int i = 0; i < SEQ_LEN; i++)
        payload[i] = (uint8_t)(seq >> (56 - 8 * i));
    sum = sum16(payload, SEQ_LEN, sum);
    put_udp_checksum(udp, sum);
}

int main(int argc, char **argv)
{
    const char *iface = NULL;
    struct in_addr source = {0}, groups[MAX_GROUPS];
    int ngroups = 0, ttl = 16, batch = 64, have_source = 0;
    double rate = -1, duration = -1;
    long size = 1316, port = 5000;

    static const struct option opts[] = {
        {"iface", required_argument, 0, 'i'}, {"source", required_argument, 0, 's'},
        {"group", required_argument, 0, 'g'}, {"rate", required_argument, 0, 'r'},
        {"duration", required_argument, 0, 'd'}, {"size", required_argument, 0, 'z'},
        {"port", required_argument, 0, 'p'}, {"ttl", required_argument, 0, 't'},
        {"batch", required_argument, 0, 'b'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'i': iface = optarg; break;
        case 's': have_source = inet_pton(AF_INET, optarg, &source) == 1; break;
        case 'g':
            if (ngroups == MAX_GROUPS)
                usage("too many groups");
            if (inet_pton(AF_INET, optarg, &groups[ngroups]) != 1 ||
                (ntohl(groups[ngroups].s_addr) >> 28) != 14)
                usage("--group needs an IPv4 multicast address");
            ngroups++;
            break;
        case 'r': rate = atof(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'z': size = atol(optarg); break;
        case 'p': port = atol(optarg); break;
        case 't': ttl = atoi(optarg); break;
        case 'b': batch = atoi(optarg); break;
        default: usage("unknown option");
        }
    }
    if (!iface || !have_source || ngroups == 0 || rate < 0 || duration <= 0)
        usage("--iface, --source, --group, --rate and --duration are required");
    if (size < SEQ_LEN || size > 65507 - 20 || port < 1 || port > 65535 || ttl < 1 ||
        ttl > 255 || batch < 1 || batch > MAX_BATCH)
        usage("bad --size, --port, --ttl or --batch");

    /* Wake up from short sleeps on time (the default timer slack is 50 us). */
    if (prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0) != 0)
        die("prctl(PR_SET_TIMERSLACK)");

    /* Protocol 0: the socket only sends, and receives nothing. */
    uint8_t src_mac[6];
    int fd = bound_packet_socket(iface, src_mac);
    int sndbuf = 64 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf) != 0)
        die("setsockopt(SO_SNDBUFFORCE)");

    size_t frame_len = HDR_LEN + (size_t)size;
    struct group *tmpl = calloc((size_t)ngroups, sizeof *tmpl);
    uint8_t *bufs = malloc((size_t)batch * frame_len);
    struct mmsghdr *msgs = calloc((size_t)batch, sizeof *msgs);
    struct iovec *iov = calloc((size_t)batch, sizeof *iov);
    if (!tmpl || !bufs || !msgs || !iov)
        die("malloc");
    for (int i = 0; i < ngroups; i++)
        build(&tmpl[i], src_mac, source, groups[i], (uint16_t)port, ttl, (size_t)size);
    for (int i = 0; i < batch; i++) {
        iov[i].iov_base = bufs + (size_t)i * frame_len;
        iov[i].iov_len = frame_len;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }

    /* Token bucket: tokens accrue at `rate`; we send in bursts of `chunk` frames (about
     * 0.5 ms worth, at most a batch) and sleep in between. The bucket holds four chunks, so
     * an oversleep on a busy machine is caught up, but not with a burst that would overflow
     * the receiver's backlog (each frame becomes N copies there); what is lost beyond lowers
     * the achieved rate, which sent/elapsed report. */
    int chunk = batch;
    double depth = 0, tokens = 0;
    if (rate > 0) {
        chunk = (int)(rate / 2000);
        chunk = chunk < 1 ? 1 : chunk > batch ? batch : chunk;
        depth = 4.0 * chunk;
        tokens = chunk;
    }
    uint64_t seq = 0, sent = 0, refused = 0;
    double start = now_s(), last = start, t = start;
    while (t - start < duration) {
        int n = batch;
        if (rate > 0) {
            tokens += (t - last) * rate;
            last = t;
            if (tokens > depth)
                tokens = depth;
            if (tokens < chunk) {
                double wait = (chunk - tokens) / rate;
                struct timespec ts = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
                if (nanosleep(&ts, NULL) != 0 && errno != EINTR)
                    die("nanosleep");
                t = now_s();
                continue;
            }
            n = tokens < batch ? (int)tokens : batch;
        }
        for (int i = 0; i < n; i++) {
            stamp(&tmpl[(seq + (uint64_t)i) % (uint64_t)ngroups], iov[i].iov_base, frame_len,
                  seq + (uint64_t)i);
        }
        /* sendmmsg stops at the first failing frame: it returns -1 (ENOBUFS: refused) if that
         * was the first, else the count before it (its error is not reported, but with veth
         * the only send-time failure is the receiver refusing it). Either way the failing
         * frame was offered: count it and go on after it. */
        int done = sendmmsg(fd, msgs, (unsigned)n, 0);
        if (done < 0 && errno != ENOBUFS)
            die("sendmmsg");
        if (done < n) {
            done = done < 0 ? 1 : done + 1;
            refused++;
        }
        sent += (uint64_t)done;
        seq += (uint64_t)done;
        if (rate > 0)
            tokens -= done;
        t = now_s();
    }
    double elapsed = now_s() - start;
    if (close(fd) != 0)
        die("close");
    printf("{\"sent\": %llu, \"refused\": %llu, \"elapsed\": %.6f, \"rate\": %.1f, "
           "\"size\": %ld, \"frame_len\": %zu, \"groups\": %d}\n",
           (unsigned long long)sent, (unsigned long long)refused, elapsed, rate, size,
           frame_len, ngroups);
    return 0;
}
