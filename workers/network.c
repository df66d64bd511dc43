/* Sandbox networks: the node's bridge and ruleset, each sandbox's link, its egress policy.
 * Links are made with rtnetlink (netlink.c), rules with libnftables, in this process:
 * no command is started on the way to a sandbox. */
#include "network.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <nftables/libnftables.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "dns.h"
#include "netlink.h"
#include "nft_batch.h"

#define POLICY_LIST_MAX 256
#define IFNAMSIZ_BUF    16

static int fail(char err[NETWORK_ERR_MAX], int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char err[NETWORK_ERR_MAX], int r, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, NETWORK_ERR_MAX, fmt, ap);
        va_end(ap);
        return r;
}

/* --- addresses ----------------------------------------------------------------------- */

/* "a.b.c.d" or "a.b.c.d/n" with the host bits zero; *ret_prefix is 32 for a bare address. */
static int cidr_parse(const char *s, uint32_t *ret_addr, int *ret_prefix)
{
        char buf[32];
        if (strlen(s) >= sizeof buf)
                return -EINVAL;
        snprintf(buf, sizeof buf, "%s", s);
        int prefix = 32;
        char *slash = strchr(buf, '/');
        if (slash) {
                char *end;
                *slash = 0;
                long p = strtol(slash + 1, &end, 10);
                if (end == slash + 1 || *end || p < 0 || p > 32)
                        return -EINVAL;
                prefix = (int)p;
        }
        struct in_addr a;
        if (inet_pton(AF_INET, buf, &a) != 1)
                return -EINVAL;
        uint32_t addr = ntohl(a.s_addr);
        uint32_t mask = prefix == 0 ? 0 : ~0u << (32 - prefix);
        if (addr & ~mask)
                return -ERANGE;
        *ret_addr = addr;
        *ret_prefix = prefix;
        return 0;
}

static void addr_text(uint32_t addr, char out[16])
{
        struct in_addr a = {.s_addr = htonl(addr)};
        inet_ntop(AF_INET, &a, out, 16);
}

static bool name_ok(const char *s, size_t max)
{
        size_t n = strlen(s);
        if (n == 0 || n > max)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
                        return false;
        return true;
}

int network_parse(const struct warren_config *cfg, struct network *ret, char err[NETWORK_ERR_MAX])
{
        /* Each port is named <bridge>v<slot>: an interface name holds 15 characters. */
        if (!name_ok(cfg->network_bridge, 8))
                return fail(err, -EINVAL, "network_bridge must be 1-8 lower-case letters and digits");
        if (cidr_parse(cfg->network_subnet, &ret->subnet, &ret->prefix) < 0 || ret->prefix < 8 ||
            ret->prefix > 28)
                return fail(err, -EINVAL,
                            "network_subnet must be an IPv4 network from /8 to /28, as 10.88.0.0/16");
        snprintf(ret->bridge, sizeof ret->bridge, "%s", cfg->network_bridge);
        ret->gateway = ret->subnet + 1;
        return 0;
}

long long network_slot_count(const struct network *n)
{
        return (1LL << (32 - n->prefix)) - 3; /* network, gateway and broadcast are not given out */
}

static uint32_t slot_address(const struct network *n, long long slot)
{
        return n->subnet + 2 + (uint32_t)slot;
}

void network_address_text(const struct network *n, long long slot, char out[16])
{
        addr_text(slot_address(n, slot), out);
}

void network_gateway_text(const struct network *n, char out[16])
{
        addr_text(n->gateway, out);
}

static void slot_port(const struct network *n, long long slot, char out[IFNAMSIZ_BUF])
{
        /* bridge: at most 8 characters (network_parse); slot: under 2^24 (a /8 at most), in hex */
        snprintf(out, IFNAMSIZ_BUF, "%.8sv%x", n->bridge, (unsigned)slot & 0xffffffu);
}

/* 02 (locally administered) 57, then the address: unique on the bridge, and known to the
 * anti-spoofing set before the link exists. */
static void address_mac(uint32_t a, uint8_t mac[6])
{
        mac[0] = 0x02;
        mac[1] = 0x57;
        mac[2] = (uint8_t)(a >> 24);
        mac[3] = (uint8_t)(a >> 16);
        mac[4] = (uint8_t)(a >> 8);
        mac[5] = (uint8_t)a;
}

static void slot_mac(const struct network *n, long long slot, uint8_t mac[6])
{
        address_mac(slot_address(n, slot), mac);
}

static void mac_text(const uint8_t mac[6], char out[18])
{
        snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
}

/* --- nftables ------------------------------------------------------------------------ */

/* One libnftables context per process, used under a lock: a context keeps a cache that is
 * not for two threads at once, and rule changes are short. */
static pthread_mutex_t nft_lock = PTHREAD_MUTEX_INITIALIZER;
static struct nft_ctx *nft;

/* Every Warren process on the host (a node's workers and master, and any other node here)
 * changes the ruleset under one lock file: libnftables reads the kernel's ruleset into its
 * cache before each change, and a change made by another process during that read fails
 * it. Whatever else edits nftables on the host can still interrupt one, so a failed run is
 * tried again a few times before it counts.
 * A POSIX lock, not flock: it belongs to this process alone. A flock belongs to the open
 * file, which every process cloned meanwhile (a sandbox before its exec, the user namespace
 * helper) holds a copy of; one such copy left behind by a warrend killed with -9 once kept
 * the lock, and every node on the host waited on it for good. */
#define NFT_LOCK_PATH "/run/lock/warren-nftables.lock"

static int nft_lock_fd = -1;

static void nft_host_lock(bool take)
{
        if (nft_lock_fd < 0)
                nft_lock_fd = open(NFT_LOCK_PATH, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        struct flock lock = {.l_type = take ? F_WRLCK : F_UNLCK, .l_whence = SEEK_SET};
        if (nft_lock_fd >= 0)
                while (fcntl(nft_lock_fd, F_SETLKW, &lock) < 0 && errno == EINTR)
                        ;
}

static int nft_run_attempts(const char *cmds, int attempts, char err[NETWORK_ERR_MAX]);

static int nft_run(const char *cmds, char err[NETWORK_ERR_MAX])
{
        return nft_run_attempts(cmds, 10, err);
}

/* For removals, which fail when what they remove is not there: two tries, no error text. */
static int nft_run_once(const char *cmds)
{
        char err[NETWORK_ERR_MAX];
        return nft_run_attempts(cmds, 2, err);
}

/* A context whose run failed is replaced: an interrupted read can leave answers on its
 * netlink socket that every later request would take for its own (libmnl then says
 * "Protocol error" forever). */
static struct nft_ctx *nft_ctx_fresh(void)
{
        struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
        if (ctx) {
                nft_ctx_buffer_output(ctx);
                nft_ctx_buffer_error(ctx);
        }
        return ctx;
}

static int nft_run_attempts(const char *cmds, int attempts, char err[NETWORK_ERR_MAX])
{
        pthread_mutex_lock(&nft_lock);
        nft_host_lock(true);
        int r = -ENOMEM;
        for (int attempt = 0; attempt < attempts; attempt++) {
                if (attempt)
                        nanosleep(&(struct timespec){.tv_nsec = attempt * 2000000L}, NULL);
                if (!nft && !(nft = nft_ctx_fresh()))
                        continue;
                r = nft_run_cmd_from_buffer(nft, cmds) == 0 ? 0 : -EINVAL;
                if (r == 0)
                        break;
                const char *e = nft_ctx_get_error_buffer(nft);
                fail(err, r, "nftables: %.200s", e && *e ? e : "refused the change");
                for (char *c = err; *c; c++) /* one line in the log */
                        if (*c == '\n')
                                *c = ' ';
                nft_ctx_free(nft);
                nft = NULL;
        }
        nft_host_lock(false);
        pthread_mutex_unlock(&nft_lock);
        return r;
}

/* Addresses no sandbox may reach whatever its policy: link-local (cloud metadata), loopback,
 * multicast, "this network", the sandboxes' own subnet, the node's Redis when it is on TCP,
 * and whatever network_blocked adds. */
static void blocked_set(const struct warren_config *cfg, const struct network *n, char *out, size_t len)
{
        char subnet[16];
        addr_text(n->subnet, subnet);
        int w = snprintf(out, len, "169.254.0.0/16, 127.0.0.0/8, 224.0.0.0/3, 0.0.0.0/8, %s/%d", subnet,
                         n->prefix);
        const char *url = cfg->redis_url;
        if (strncmp(url, "redis://", 8) == 0 || strncmp(url, "rediss://", 9) == 0) {
                const char *host = strstr(url, "//") + 2;
                const char *at = strchr(host, '@');
                if (at)
                        host = at + 1;
                char name[256];
                size_t k = strcspn(host, ":/");
                snprintf(name, sizeof name, "%.*s", (int)(k < sizeof name ? k : sizeof name - 1), host);
                struct addrinfo hints = {.ai_family = AF_INET}, *res = NULL;
                if (getaddrinfo(name, NULL, &hints, &res) == 0) {
                        for (struct addrinfo *a = res; a && w > 0 && (size_t)w < len; a = a->ai_next) {
                                char t[16];
                                addr_text(ntohl(((struct sockaddr_in *)a->ai_addr)->sin_addr.s_addr), t);
                                w += snprintf(out + w, len - (size_t)w, ", %s", t);
                        }
                        freeaddrinfo(res);
                }
        }
        char extra[sizeof cfg->network_blocked];
        snprintf(extra, sizeof extra, "%s", cfg->network_blocked);
        for (char *save = NULL, *tok = strtok_r(extra, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
                uint32_t a;
                int p;
                if (cidr_parse(tok, &a, &p) == 0 && w > 0 && (size_t)w < len)
                        w += snprintf(out + w, len - (size_t)w, ", %s", tok);
        }
}

static int base_ruleset(const struct warren_config *cfg, const struct network *n, char err[NETWORK_ERR_MAX])
{
        char gw[16], subnet[16], blocked[2048];
        addr_text(n->gateway, gw);
        addr_text(n->subnet, subnet);
        blocked_set(cfg, n, blocked, sizeof blocked);
        const char *b = n->bridge;
        char cmds[8192];
        /* Sets, maps and per-sandbox chains are only added (kept if there); the base chains
         * are flushed and written again, all in one transaction. What is refused is refused
         * at once, not left to time out: a TCP reset ("connection refused", which no ICMP
         * rate limit holds back), else ICMP administratively prohibited. */
        int len = snprintf(
            cmds, sizeof cmds,
            "add table inet %1$s\n"
            "add set inet %1$s blocked { type ipv4_addr; flags interval; auto-merge; }\n"
            "add map inet %1$s egress { type ipv4_addr : verdict; }\n"
            "add chain inet %1$s input { type filter hook input priority -5; policy accept; }\n"
            "add chain inet %1$s forward { type filter hook forward priority -5; policy accept; }\n"
            "add chain inet %1$s postrouting { type nat hook postrouting priority 95; policy accept; }\n"
            "add chain inet %1$s refuse\n"
            "flush chain inet %1$s refuse\n"
            "add rule inet %1$s refuse meta l4proto tcp reject with tcp reset\n"
            "add rule inet %1$s refuse reject with icmpx admin-prohibited\n"
            "flush chain inet %1$s input\n"
            "flush chain inet %1$s forward\n"
            "flush chain inet %1$s postrouting\n"
            "flush set inet %1$s blocked\n"
            "add element inet %1$s blocked { %2$s }\n"
            "add rule inet %1$s input iifname \"%1$s\" ct state established,related accept\n"
            "add rule inet %1$s input iifname \"%1$s\" ip daddr %3$s udp dport 53 accept\n"
            "add rule inet %1$s input iifname \"%1$s\" ip daddr %3$s tcp dport 53 accept\n"
            "add rule inet %1$s input iifname \"%1$s\" ip daddr %3$s icmp type echo-request accept\n"
            "add rule inet %1$s input iifname \"%1$s\" goto refuse\n"
            "add rule inet %1$s forward oifname \"%1$s\" ct state established,related accept\n"
            "add rule inet %1$s forward iifname \"%1$s\" oifname \"%1$s\" goto refuse\n"
            "add rule inet %1$s forward oifname \"%1$s\" drop\n"
            "add rule inet %1$s forward iifname \"%1$s\" ip daddr @blocked goto refuse\n"
            "add rule inet %1$s forward iifname \"%1$s\" ip saddr vmap @egress\n"
            "add rule inet %1$s forward iifname \"%1$s\" drop\n"
            "add rule inet %1$s postrouting ip saddr %4$s/%5$d oifname != \"%1$s\" masquerade\n"
            "add table bridge %1$s\n"
            "add set bridge %1$s ports { type ifname . ether_addr . ipv4_addr; }\n"
            "add chain bridge %1$s prerouting { type filter hook prerouting priority -300; policy accept; }\n"
            "flush chain bridge %1$s prerouting\n"
            "add rule bridge %1$s prerouting iifname != \"%1$sv*\" accept\n"
            "add rule bridge %1$s prerouting ether type ip iifname . ether saddr . ip saddr @ports accept\n"
            "add rule bridge %1$s prerouting ether type arp iifname . ether saddr . arp saddr ip @ports "
            "iifname . arp saddr ether . arp saddr ip @ports accept\n"
            "add rule bridge %1$s prerouting drop\n",
            b, blocked, gw, subnet, n->prefix);
        if (len >= (int)sizeof cmds)
                return fail(err, -E2BIG, "the node's ruleset is too long (network_blocked)");
        return nft_run(cmds, err);
}

/* --- the node ------------------------------------------------------------------------ */

static int write_file(const char *path, const char *value)
{
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return write(fd, value, strlen(value)) < 0 ? -errno : 0;
}

static int sysctl_iface(const char *family, const char *iface, const char *key, const char *value)
{
        char path[128];
        snprintf(path, sizeof path, "/proc/sys/net/%s/conf/%s/%s", family, iface, key);
        return write_file(path, value);
}

int network_node_setup(const struct warren_config *cfg, char err[NETWORK_ERR_MAX])
{
        struct network n;
        int r = network_parse(cfg, &n, err);
        if (r < 0)
                return r;
        _cleanup_close_ int nl = nl_open();
        if (nl < 0)
                return fail(err, nl, "open rtnetlink: %s", strerror(-nl));
        /* A MAC of its own: a bridge left to choose takes its lowest port's, which changes as
         * sandboxes come and go, and would leave the others' ARP caches pointing nowhere. */
        uint8_t mac[6];
        address_mac(n.gateway, mac);
        r = nl_bridge_add(nl, n.bridge, mac);
        if (r < 0 && r != -EEXIST)
                return fail(err, r, "create bridge %s: %s", n.bridge, strerror(-r));
        int index = nl_link_index(nl, n.bridge);
        if (index < 0)
                return fail(err, index, "find bridge %s: %s", n.bridge, strerror(-index));
        sysctl_iface("ipv6", n.bridge, "disable_ipv6", "1");
        r = nl_addr_add(nl, index, htonl(n.gateway), n.prefix);
        if (r < 0 && r != -EEXIST)
                return fail(err, r, "address bridge %s: %s", n.bridge, strerror(-r));
        if ((r = nl_link_set_index(nl, index, true)) < 0)
                return fail(err, r, "bring up bridge %s: %s", n.bridge, strerror(-r));
        if ((r = write_file("/proc/sys/net/ipv4/ip_forward", "1")) < 0)
                return fail(err, r, "enable forwarding: %s", strerror(-r));
        if ((r = base_ruleset(cfg, &n, err)) < 0)
                return r;
        char gw[16], derr[DNS_ERR_MAX];
        addr_text(n.gateway, gw);
        if ((r = dns_forwarder_start(cfg, gw, derr)) < 0)
                return fail(err, r, "%s", derr);
        return 0;
}

/* --- a sandbox ----------------------------------------------------------------------- */

/* Makes a network namespace from this thread (a thread may change its own network
 * namespace, the process stays where it is), opens a netlink socket and the namespace's
 * fd while inside, and comes back. */
static int netns_make(int *ret_nl, char err[NETWORK_ERR_MAX])
{
        _cleanup_close_ int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (home < 0)
                return fail(err, -errno, "open own network namespace: %s", strerror(errno));
        if (unshare(CLONE_NEWNET) < 0)
                return fail(err, -errno, "make network namespace: %s", strerror(errno));
        int ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        int r = ns < 0 ? -errno : 0;
        int nl = r == 0 ? nl_open() : -1;
        if (r == 0 && nl < 0)
                r = nl;
        /* No IPv6 inside: the sandbox's network is IPv4 only, so no address to spoof. */
        if (r == 0)
                write_file("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
        if (r == 0)
                write_file("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
        /* The gateway answers a packet for another sandbox with a redirect ("it is on your
         * link"); followed, it would send the next ones past the gateway's refusal into the
         * isolated bridge, to time out there. */
        if (r == 0)
                write_file("/proc/sys/net/ipv4/conf/all/accept_redirects", "0");
        if (r == 0)
                write_file("/proc/sys/net/ipv4/conf/default/accept_redirects", "0");
        /* Any port in it may be bound by anyone inside: root inside holds no capability over
         * this namespace. */
        if (r == 0)
                r = write_file("/proc/sys/net/ipv4/ip_unprivileged_port_start", "0");
        /* lo up here, not in the sandbox's launch: its wiring runs alongside that launch, and
         * both would wait for the kernel's one lock over links (rtnl). */
        if (r == 0)
                r = nl_link_set_index(nl, 1, true);
        if (setns(home, CLONE_NEWNET) < 0)
                abort(); /* a request thread left in a sandbox's namespace must not go on */
        if (r < 0) {
                if (ns >= 0)
                        close(ns);
                return fail(err, r, "set up network namespace: %s", strerror(-r));
        }
        *ret_nl = nl;
        return ns;
}

static int link_plug(const struct network *n, long long slot, int netns, char err[NETWORK_ERR_MAX])
{
        _cleanup_close_ int nl = nl_open();
        if (nl < 0)
                return fail(err, nl, "open rtnetlink: %s", strerror(-nl));
        char port[IFNAMSIZ_BUF];
        slot_port(n, slot, port);
        uint8_t mac[6];
        slot_mac(n, slot, mac);
        int r = nl_veth_add(nl, port, "eth0", mac, 2, netns);
        if (r == -EEXIST) { /* a namespace of this slot's last sandbox on its way out */
                nl_link_del(nl, port);
                r = nl_veth_add(nl, port, "eth0", mac, 2, netns);
        }
        if (r < 0)
                return fail(err, r, "create link %s: %s", port, strerror(-r));
        int bridge = nl_link_index(nl, n->bridge);
        if (bridge < 0)
                r = bridge;
        if (r == 0) {
                sysctl_iface("ipv6", port, "disable_ipv6", "1");
                r = nl_link_set(nl, port, bridge, true);
        }
        if (r == 0) {
                /* An isolated port talks to the bridge (the host) only, never to another port. */
                char path[96];
                snprintf(path, sizeof path, "/sys/class/net/%s/brport/isolated", port);
                r = write_file(path, "1");
        }
        if (r < 0) {
                nl_link_del(nl, port);
                return fail(err, r, "plug %s into bridge %s: %s", port, n->bridge, strerror(-r));
        }
        return 0;
}

static int link_address(const struct network *n, long long slot, int inner_nl, char err[NETWORK_ERR_MAX])
{
        /* A /32 and an on-link default route: everything a sandbox sends, to another sandbox
         * too, goes to the gateway, where the node's rules refuse it at once (a shared prefix
         * would have it ask the isolated bridge for its neighbours and time out). lo is up
         * already: the namespace came with it (netns_make). */
        int r = nl_addr_add(inner_nl, 2, htonl(slot_address(n, slot)), 32);
        if (r == 0)
                r = nl_link_set_index(inner_nl, 2, true);
        if (r == 0)
                r = nl_route_add_default(inner_nl, 2, htonl(n->gateway));
        return r < 0 ? fail(err, r, "address eth0: %s", strerror(-r)) : 0;
}

/* The sandbox's chain, its egress map entry (which points at the chain, which policy changes
 * rewrite) and its bridge ports entry, in one batch (nft_batch.c). */
static int sandbox_rules_add(const struct network *n, const char *id, long long slot,
                             char err[NETWORK_ERR_MAX])
{
        char chain[64], port[IFNAMSIZ_BUF];
        snprintf(chain, sizeof chain, "sb_%s", id);
        slot_port(n, slot, port);
        struct nft_sandbox_entries e = {
            .table = n->bridge, .chain = chain, .address = htonl(slot_address(n, slot)), .port = port};
        slot_mac(n, slot, e.mac);
        pthread_mutex_lock(&nft_lock);
        nft_host_lock(true);
        const char *step;
        int r = nft_batch_sandbox_add(&e, &step);
        nft_host_lock(false);
        pthread_mutex_unlock(&nft_lock);
        return r < 0 ? fail(err, r, "nftables: could not %s: %s", step, strerror(-r)) : 0;
}

int network_sandbox_netns(const struct network *n, long long slot, int *ret_nl, char err[NETWORK_ERR_MAX])
{
        if (slot < 0 || slot >= network_slot_count(n)) {
                char subnet[16];
                addr_text(n->subnet, subnet);
                return fail(err, -ERANGE, "slot %lld has no address in %s/%d", slot, subnet, n->prefix);
        }
        return netns_make(ret_nl, err);
}

int network_sandbox_wire(const struct network *n, const char *id, long long slot, int netns, int nl,
                         char err[NETWORK_ERR_MAX])
{
        int r = link_plug(n, slot, netns, err);
        if (r == 0)
                r = link_address(n, slot, nl, err);
        if (r == 0)
                r = sandbox_rules_add(n, id, slot, err);
        return r;
}

/* --- egress policy ------------------------------------------------------------------- */

/* An entry names an address, a network, or a domain (with the names under it). */
static int policy_entry(json_t *e, const char *field, size_t i, char out[256], char err[NETWORK_ERR_MAX])
{
        const char *s = json_string_value(e);
        uint32_t a;
        int p, r = s ? cidr_parse(s, &a, &p) : -EINVAL;
        if (r == 0) {
                char t[16];
                addr_text(a, t);
                snprintf(out, 256, p == 32 ? "%s" : "%s/%d", t, p);
                return 0;
        }
        char lower[256];
        size_t n = s ? strlen(s) : 0;
        for (size_t k = 0; k < n && k < sizeof lower - 1; k++)
                lower[k] = (char)(s[k] >= 'A' && s[k] <= 'Z' ? s[k] - 'A' + 'a' : s[k]);
        lower[n < sizeof lower ? n : sizeof lower - 1] = 0;
        if (s && r != -ERANGE && n < sizeof lower && dns_domain_valid(lower)) {
                snprintf(out, 256, "%s", lower);
                return 0;
        }
        if (s && strchr(s, ':'))
                return fail(err, -EINVAL, "network.%s[%zu]: sandboxes have IPv4 only; '%.64s' is IPv6", field,
                            i, s);
        if (r == -ERANGE)
                return fail(err, -EINVAL, "network.%s[%zu]: '%.64s' has host bits set past its prefix", field,
                            i, s);
        if (s && s[0] == '*')
                return fail(err, -EINVAL,
                            "network.%s[%zu]: write '%.64s' without '*.': a domain covers the names under it",
                            field, i, s);
        return fail(err, -EINVAL,
                    "network.%s[%zu] must be an IPv4 address, a CIDR as 10.0.0.0/8, or a domain name as "
                    "example.com",
                    field, i);
}

static json_t *policy_list(json_t *in, const char *field, char err[NETWORK_ERR_MAX])
{
        json_t *v = json_object_get(in, field);
        json_t *out = json_array();
        if (!v || json_is_null(v))
                return out;
        if (!json_is_array(v) || json_array_size(v) > POLICY_LIST_MAX) {
                fail(err, -EINVAL,
                     "network.%s must be a list of at most %d IPv4 addresses, CIDRs or domain names", field,
                     POLICY_LIST_MAX);
                json_decref(out);
                return NULL;
        }
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
                char entry[256];
                if (policy_entry(e, field, i, entry, err) < 0) {
                        json_decref(out);
                        return NULL;
                }
                json_array_append_new(out, json_string(entry));
        }
        return out;
}

json_t *network_policy_parse(json_t *in, char err[NETWORK_ERR_MAX])
{
        if (!json_is_object(in)) {
                fail(err, -EINVAL, "network must be an object: {internet, allow_out, deny_out}");
                return NULL;
        }
        const char *k;
        json_t *v;
        json_object_foreach(in, k, v)
        {
                if (strcmp(k, "internet") && strcmp(k, "allow_out") && strcmp(k, "deny_out")) {
                        fail(err, -EINVAL, "network: unknown field '%.64s' (internet, allow_out, deny_out)",
                             k);
                        return NULL;
                }
        }
        json_t *internet = json_object_get(in, "internet");
        if (internet && !json_is_boolean(internet)) {
                fail(err, -EINVAL, "network.internet must be true or false");
                return NULL;
        }
        json_t *allow = policy_list(in, "allow_out", err);
        json_t *deny = allow ? policy_list(in, "deny_out", err) : NULL;
        if (!deny) {
                json_decref(allow);
                return NULL;
        }
        return json_pack("{s:b, s:o, s:o}", "internet", internet ? json_is_true(internet) : 1, "allow_out",
                         allow, "deny_out", deny);
}

json_t *network_policy_default(void)
{
        return json_pack("{s:b, s:[], s:[]}", "internet", 1, "allow_out", "deny_out");
}

static bool is_domain(json_t *e)
{
        return dns_domain_valid(json_string_value(e));
}

/* One rule for the list's addresses and networks, one per domain (its set). */
static int append_rules(char *buf, size_t len, int w, const struct network *n, const char *id, json_t *list,
                        const char *verdict)
{
        size_t i, cidrs = 0;
        json_t *e;
        json_array_foreach(list, i, e) cidrs += !is_domain(e);
        if (cidrs && w >= 0 && (size_t)w < len) {
                w += snprintf(buf + w, len - (size_t)w, "add rule inet %s sb_%s ip daddr { ", n->bridge, id);
                bool first = true;
                json_array_foreach(list, i, e)
                {
                        if (is_domain(e) || w < 0 || (size_t)w >= len)
                                continue;
                        w += snprintf(buf + w, len - (size_t)w, "%s%s", first ? "" : ", ",
                                      json_string_value(e));
                        first = false;
                }
                if (w >= 0 && (size_t)w < len)
                        w += snprintf(buf + w, len - (size_t)w, " } %s\n", verdict);
        }
        json_array_foreach(list, i, e)
        {
                if (!is_domain(e) || w < 0 || (size_t)w >= len)
                        continue;
                char set[DNS_SET_NAME_MAX];
                dns_domain_set_name(json_string_value(e), set);
                w += snprintf(buf + w, len - (size_t)w,
                              "add set inet %1$s %2$s { type ipv4_addr; flags timeout; timeout 1d; }\n"
                              "add rule inet %1$s sb_%3$s ip daddr @%2$s %4$s\n",
                              n->bridge, set, id, verdict);
        }
        return w;
}

static bool has_domain(json_t *list)
{
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e) if (is_domain(e)) return true;
        return false;
}

/* Allowed first (an allow entry wins over a deny entry that covers it), then denied, then
 * the internet switch for everything else. A denied domain holds for the addresses the
 * node's forwarder gives out, so a sandbox with one may not ask another resolver (DNS and
 * DNS over TLS elsewhere are refused; an allowed address still may be asked). */
int network_policy_apply(const struct warren_config *cfg, const char *id, json_t *policy,
                         char err[NETWORK_ERR_MAX])
{
        struct network n;
        int r = network_parse(cfg, &n, err);
        if (r < 0)
                return r;
        json_t *allow = json_object_get(policy, "allow_out"), *deny = json_object_get(policy, "deny_out");
        char cmds[65536];
        size_t len = sizeof cmds;
        int w = snprintf(cmds, len, "flush chain inet %1$s sb_%2$s\n", n.bridge, id);
        w = append_rules(cmds, len, w, &n, id, allow, "accept");
        if (has_domain(deny) && w >= 0 && (size_t)w < len)
                w += snprintf(cmds + w, len - (size_t)w,
                              "add rule inet %1$s sb_%2$s udp dport 53 goto refuse\n"
                              "add rule inet %1$s sb_%2$s tcp dport { 53, 853 } goto refuse\n",
                              n.bridge, id);
        w = append_rules(cmds, len, w, &n, id, deny, "goto refuse");
        if (w >= 0 && (size_t)w < len)
                w += snprintf(cmds + w, len - (size_t)w, "add rule inet %s sb_%s %s\n", n.bridge, id,
                              json_is_true(json_object_get(policy, "internet")) ? "accept" : "goto refuse");
        if (w < 0 || (size_t)w >= len)
                return fail(err, -E2BIG, "the egress policy is too long");
        if ((r = nft_run(cmds, err)) < 0)
                return r;
        if (!has_domain(allow) && !has_domain(deny))
                return 0;
        /* The sets exist now: the forwarder may fill them. */
        char gw[16], derr[DNS_ERR_MAX];
        addr_text(n.gateway, gw);
        json_t *both = json_array();
        json_array_extend(both, allow);
        json_array_extend(both, deny);
        r = dns_domains_follow(cfg, n.bridge, gw, both, derr);
        json_decref(both);
        return r < 0 ? fail(err, r, "%s", derr) : 0;
}

/* Removes the slot's link now (it would otherwise go when the kernel tears its namespace
 * down). */
static void link_remove(const struct network *n, long long slot)
{
        char port[IFNAMSIZ_BUF];
        slot_port(n, slot, port);
        int nl = nl_open();
        if (nl >= 0) {
                nl_link_del(nl, port);
                close(nl);
        }
}

void network_sandbox_release(const struct warren_config *cfg, const char *id, long long slot)
{
        struct network n;
        char err[NETWORK_ERR_MAX];
        if (slot < 0 || network_parse(cfg, &n, err) < 0)
                return;
        char ip[16], port[IFNAMSIZ_BUF], macs[18], cmd[512];
        uint8_t mac[6];
        addr_text(slot_address(&n, slot), ip);
        slot_port(&n, slot, port);
        slot_mac(&n, slot, mac);
        mac_text(mac, macs);
        /* In one transaction; should it fail (a failed start made only some of them), one by
         * one, so that whatever is there goes. */
        char all[1024];
        snprintf(all, sizeof all,
                 "delete element inet %1$s egress { %2$s }\n"
                 "flush chain inet %1$s sb_%3$s\n"
                 "delete chain inet %1$s sb_%3$s\n"
                 "delete element bridge %1$s ports { \"%4$s\" . %5$s . %2$s }\n",
                 n.bridge, ip, id, port, macs);
        if (nft_run_once(all) < 0) {
                snprintf(cmd, sizeof cmd, "delete element inet %s egress { %s }", n.bridge, ip);
                nft_run_once(cmd);
                snprintf(cmd, sizeof cmd, "flush chain inet %1$s sb_%2$s\ndelete chain inet %1$s sb_%2$s",
                         n.bridge, id);
                nft_run_once(cmd);
                snprintf(cmd, sizeof cmd, "delete element bridge %s ports { \"%s\" . %s . %s }", n.bridge,
                         port, macs, ip);
                nft_run_once(cmd);
        }
        /* The link would go with the namespace's teardown, but not at once: removed here, a
         * slot given out again never meets its last sandbox's link. (It costs the delete the
         * wait on that teardown.) */
        link_remove(&n, slot);
}
