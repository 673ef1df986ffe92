/*
 * cfwd: the smallest multicast-to-unicast forwarder, a baseline for the snoopcast benchmark.
 *
 *   cfwd --in IF --out IF --group G --mac MAC [--mac MAC ...] [--batch B] [--kernel-join]
 *
 * No IGMP, no membership table, no lookups: the subscribers' unicast MACs are given on the
 * command line. An AF_PACKET socket on the upstream interface (--in) receives the group's
 * frames with recvmmsg (up to B at a time, default 64); for every frame whose IPv4
 * destination is G it emits one copy per MAC, the destination MAC rewritten and everything
 * else (source MAC, IP, UDP, payload) as received, with sendmmsg on an AF_PACKET socket bound
 * to the downstream interface (--out). The copy is a two-part iovec (the MAC, then the
 * received frame from byte 6 on), so user space copies no frame data at all.
 *
 * The frames are received without any IP-level join: PACKET_ADD_MEMBERSHIP with
 * PACKET_MR_MULTICAST for the group's MAC (01:00:5e + the low 23 bits of G) puts the MAC in
 * the interface's filter, as a NIC needs. PACKET_IGNORE_OUTGOING, and a check that each
 * frame arrived as PACKET_MULTICAST, keep anything sent on --in (the box kernel's own IGMP
 * reports) out.
 *
 * --kernel-join makes the box kernel a member of G on --in as well, the way snoopcast joins
 * upstream: an unbound UDP socket, IP_MULTICAST_ALL off, a minimal receive buffer, never read,
 * doing IP_ADD_MEMBERSHIP on --in. Every data frame then also goes up the box's IP stack
 * (routed as local multicast, handed to UDP, which finds no socket on the port and frees it)
 * besides reaching the capture socket. Without it the IP stack drops the frame at the route
 * lookup (a group nobody joined).
 *
 * Socket sizes as snoopcast's: capture socket ETH_P_ALL with an 8 MiB receive buffer
 * (SO_RCVBUFFORCE), send socket protocol 0 (receives nothing) with a 4 MiB send buffer and
 * PACKET_QDISC_BYPASS where the kernel takes it. Unlike snoopcast, no BPF filter (the checks
 * are in user space; the benchmark's upstream carries only the group) and blocking sends. A
 * copy the kernel refuses (ENOBUFS, a full receive backlog on the other end of the veth) is
 * counted as dropped and skipped.
 *
 * Counters (one JSON line on stdout, flushed): on SIGUSR1, and on SIGTERM or SIGINT before it
 * exits with status 0:
 *   {"frames_received": frames recvmmsg returned, "frames_forwarded": of these, the group's
 *    (copied), "ignored": the rest, "copies_sent": copies the kernel took, "copies_dropped":
 *    copies it refused, "capture_drops": frames the capture socket's full queue lost
 *    (PACKET_STATISTICS), "batches": recvmmsg calls that returned frames}
 * Any other failing system call ends it with a message and exit status 1.
 */
#define _GNU_SOURCE
#define PROG "cfwd"
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include "packet_common.h"

#define MAX_MACS 4096
#define MAX_BATCH 1024
#define FRAME_MAX 9216   /* receive buffer per frame: a jumbo frame */
#define SEND_CHUNK 1024  /* messages per sendmmsg (the kernel's limit, UIO_MAXIOV) */

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

static volatile sig_atomic_t stop_flag, dump_flag;

static void on_stop(int sig) { (void)sig; stop_flag = 1; }
static void on_dump(int sig) { (void)sig; dump_flag = 1; }

static struct {
    unsigned long long frames_received, frames_forwarded, ignored, copies_sent, copies_dropped,
        capture_drops, batches;
} st;

static void usage(const char *msg)
{
    fprintf(stderr, "cfwd: %s\nusage: cfwd --in IF --out IF --group G --mac MAC [--mac MAC ...] "
                    "[--batch B] [--kernel-join]\n", msg);
    exit(2);
}

static void parse_mac(const char *s, uint8_t mac[6])
{
    unsigned int b[6];
    char end;
    if (sscanf(s, "%x:%x:%x:%x:%x:%x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &end) != 6)
        usage("bad MAC in --mac");
    for (int i = 0; i < 6; i++) {
        if (b[i] > 0xff)
            usage("bad MAC in --mac");
        mac[i] = (uint8_t)b[i];
    }
}

static unsigned ifindex_of(const char *name)
{
    unsigned idx = if_nametoindex(name);
    if (idx == 0)
        die(name);
    return idx;
}

/* The capture socket: every frame of --in (ETH_P_ALL), its own output ignored, the group's
 * MAC added to the interface's multicast filter. */
static int capture_socket(unsigned ifindex, const uint8_t group_mac[6])
{
    int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    if (fd < 0)
        die("socket(AF_PACKET)");
    int one = 1, rcvbuf = 8 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0 &&
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) != 0)
        die("SO_RCVBUF");
    /* Older kernels (before 4.20) lack it: the pkttype check below then does the job. */
    if (setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) != 0)
        fprintf(stderr, "cfwd: PACKET_IGNORE_OUTGOING: %s (filtering by pkttype only)\n",
                strerror(errno));
    struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
                              .sll_ifindex = (int)ifindex};
    if (bind(fd, (struct sockaddr *)&sll, sizeof sll) != 0)
        die("bind capture socket");
    /* A signal arriving just before recvmmsg blocks is seen within 100 ms. */
    struct timeval tick = {.tv_sec = 0, .tv_usec = 100000};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof tick) != 0)
        die("SO_RCVTIMEO");
    struct packet_mreq mr = {.mr_ifindex = (int)ifindex, .mr_type = PACKET_MR_MULTICAST,
                             .mr_alen = 6};
    memcpy(mr.mr_address, group_mac, 6);
    if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) != 0)
        die("PACKET_ADD_MEMBERSHIP");
    return fd;
}

/* --kernel-join: the box kernel joins `group` on interface `ifindex` through a socket that
 * never receives a datagram (unbound) and is never read. Returns it (kept open). */
static int kernel_join(unsigned ifindex, struct in_addr group)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0)
        die("socket(AF_INET)");
    int zero = 0, tiny = 1;
    if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof zero) != 0)
        die("IP_MULTICAST_ALL");
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &tiny, sizeof tiny) != 0)
        die("SO_RCVBUF");
    struct ip_mreqn mreq = {.imr_multiaddr = group, .imr_ifindex = (int)ifindex};
    if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof mreq) != 0)
        die("IP_ADD_MEMBERSHIP");
    return fd;
}

/* Adds what the capture socket dropped since the last call (PACKET_STATISTICS resets). */
static void take_capture_drops(int fd)
{
    struct tpacket_stats ts;
    socklen_t len = sizeof ts;
    if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &ts, &len) != 0)
        die("PACKET_STATISTICS");
    st.capture_drops += ts.tp_drops;
}

static void dump(int cap)
{
    take_capture_drops(cap);
    printf("{\"frames_received\": %llu, \"frames_forwarded\": %llu, \"ignored\": %llu, "
           "\"copies_sent\": %llu, \"copies_dropped\": %llu, \"capture_drops\": %llu, "
           "\"batches\": %llu}\n",
           st.frames_received, st.frames_forwarded, st.ignored, st.copies_sent,
           st.copies_dropped, st.capture_drops, st.batches);
    fflush(stdout);
}

/* Sends the `n` prepared copies. sendmmsg stops at the first copy that fails: -1 if it was
 * the first, else the count before it. That copy is counted as dropped and skipped. */
static void send_all(int fd, struct mmsghdr *msgs, unsigned n)
{
    unsigned off = 0;
    while (off < n) {
        int done = sendmmsg(fd, msgs + off, n - off, 0);
        if (done < 0) {
            if (errno == EINTR)
                continue;
            if (errno != ENOBUFS && errno != EAGAIN)
                die("sendmmsg");
            done = 0;
        }
        st.copies_sent += (unsigned)done;
        off += (unsigned)done;
        if (off < n) {
            st.copies_dropped++;
            off++;
        }
    }
}

/* Is this received frame one of the group's IPv4 datagrams, arriving from the wire? */
static int ours(const uint8_t *f, size_t len, const struct sockaddr_ll *from, int flags,
                const uint8_t group_mac[6], struct in_addr group)
{
    return from->sll_pkttype == PACKET_MULTICAST && !(flags & MSG_TRUNC) && len >= HDR_LEN &&
           memcmp(f, group_mac, 6) == 0 && f[12] == 0x08 && f[13] == 0x00 &&
           memcmp(f + 14 + 16, &group.s_addr, 4) == 0;
}

int main(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    static uint8_t macs[MAX_MACS][6];
    struct in_addr group = {0};
    int nmacs = 0, batch = 64, have_group = 0, join = 0;

    static const struct option opts[] = {
        {"in", required_argument, 0, 'i'}, {"out", required_argument, 0, 'o'},
        {"group", required_argument, 0, 'g'}, {"mac", required_argument, 0, 'm'},
        {"batch", required_argument, 0, 'b'}, {"kernel-join", no_argument, 0, 'j'},
        {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'i': in = optarg; break;
        case 'o': out = optarg; break;
        case 'g': have_group = inet_pton(AF_INET, optarg, &group) == 1; break;
        case 'm':
            if (nmacs == MAX_MACS)
                usage("too many --mac");
            parse_mac(optarg, macs[nmacs++]);
            break;
        case 'b': batch = atoi(optarg); break;
        case 'j': join = 1; break;
        default: usage("unknown option");
        }
    }
    uint32_t g = ntohl(group.s_addr);
    if (!in || !out || !have_group || nmacs == 0)
        usage("--in, --out, --group and at least one --mac are required");
    if ((g >> 28) != 0xe || batch < 1 || batch > MAX_BATCH)
        usage("--group must be an IPv4 multicast address, --batch 1..1024");
    const uint8_t group_mac[6] = {0x01, 0x00, 0x5e, (g >> 16) & 0x7f, (g >> 8) & 0xff, g & 0xff};

    /* Signals without SA_RESTART: a blocked recvmmsg returns EINTR and the loop looks. */
    struct sigaction sa = {0};
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_dump;
    sigaction(SIGUSR1, &sa, NULL);

    unsigned in_idx = ifindex_of(in);
    int cap = capture_socket(in_idx, group_mac);
    uint8_t out_mac[6]; /* unused: the source MAC stays as received */
    int tx = bound_packet_socket(out, out_mac);
    int sndbuf = 4 << 20, one = 1;
    if (setsockopt(tx, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) != 0)
        die("SO_SNDBUF");
    (void)setsockopt(tx, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
    int join_fd = join ? kernel_join(in_idx, group) : -1;

    /* Receive side: `batch` frame buffers, each with its sender address (for sll_pkttype). */
    uint8_t *bufs = malloc((size_t)batch * FRAME_MAX);
    struct mmsghdr *rmsgs = calloc((size_t)batch, sizeof *rmsgs);
    struct iovec *riov = calloc((size_t)batch, sizeof *riov);
    struct sockaddr_ll *from = calloc((size_t)batch, sizeof *from);
    /* Send side: SEND_CHUNK copies, two iovecs each (the subscriber's MAC, the frame after
     * its destination MAC). */
    struct mmsghdr *smsgs = calloc(SEND_CHUNK, sizeof *smsgs);
    struct iovec *siov = calloc(2 * SEND_CHUNK, sizeof *siov);
    if (!bufs || !rmsgs || !riov || !from || !smsgs || !siov)
        die("malloc");
    for (int i = 0; i < batch; i++) {
        riov[i] = (struct iovec){.iov_base = bufs + (size_t)i * FRAME_MAX, .iov_len = FRAME_MAX};
        rmsgs[i].msg_hdr.msg_iov = &riov[i];
        rmsgs[i].msg_hdr.msg_iovlen = 1;
        rmsgs[i].msg_hdr.msg_name = &from[i];
    }
    for (int i = 0; i < SEND_CHUNK; i++) {
        smsgs[i].msg_hdr.msg_iov = &siov[2 * i];
        smsgs[i].msg_hdr.msg_iovlen = 2;
        siov[2 * i].iov_len = 6;
    }
    fprintf(stderr, "cfwd: %s -> %s, group %s, %d subscribers, batch %d%s\n", in, out,
            inet_ntoa(group), nmacs, batch, join ? ", kernel joined on the upstream" : "");

    while (!stop_flag) {
        if (dump_flag) {
            dump_flag = 0;
            dump(cap);
        }
        for (int i = 0; i < batch; i++)
            rmsgs[i].msg_hdr.msg_namelen = sizeof from[i];
        /* Blocks for the first frame (100 ms at most), then takes whatever else is queued, up
         * to `batch`. */
        int got = recvmmsg(cap, rmsgs, (unsigned)batch, MSG_WAITFORONE, NULL);
        if (got < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            die("recvmmsg");
        }
        st.frames_received += (unsigned)got;
        st.batches++;
        unsigned n = 0; /* copies prepared in smsgs */
        for (int i = 0; i < got; i++) {
            uint8_t *f = riov[i].iov_base;
            size_t len = rmsgs[i].msg_len;
            if (!ours(f, len, &from[i], rmsgs[i].msg_hdr.msg_flags, group_mac, group)) {
                st.ignored++;
                continue;
            }
            st.frames_forwarded++;
            for (int h = 0; h < nmacs; h++) {
                siov[2 * n].iov_base = macs[h];
                siov[2 * n + 1] = (struct iovec){.iov_base = f + 6, .iov_len = len - 6};
                if (++n == SEND_CHUNK) {
                    send_all(tx, smsgs, n);
                    n = 0;
                }
            }
        }
        send_all(tx, smsgs, n);
    }
    dump(cap);
    if (join_fd >= 0)
        close(join_fd);
    close(tx);
    close(cap);
    return 0;
}
