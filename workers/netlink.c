/* rtnetlink by hand. A request is built in a buffer on the stack: the header, the family's
 * message, then attributes (nested ones are closed by patching their length). */
#include "netlink.h"

#include <errno.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct nl_req {
        union {
                struct nlmsghdr hdr;
                char buf[1024];
        };
};

static void *nl_tail(struct nl_req *r)
{
        return r->buf + NLMSG_ALIGN(r->hdr.nlmsg_len);
}

static void nl_begin(struct nl_req *r, int type, int flags, const void *msg, size_t len)
{
        memset(r, 0, sizeof *r);
        r->hdr.nlmsg_len = (uint32_t)NLMSG_LENGTH(len);
        r->hdr.nlmsg_type = (uint16_t)type;
        r->hdr.nlmsg_flags = (uint16_t)(NLM_F_REQUEST | NLM_F_ACK | flags);
        memcpy(NLMSG_DATA(&r->hdr), msg, len);
}

static struct rtattr *nl_attr(struct nl_req *r, int type, const void *data, size_t len)
{
        struct rtattr *a = nl_tail(r);
        size_t total = NLMSG_ALIGN(r->hdr.nlmsg_len) + RTA_SPACE(len);
        if (total > sizeof r->buf)
                return NULL; /* never: every request here is far smaller than the buffer */
        a->rta_type = (unsigned short)type;
        a->rta_len = (unsigned short)RTA_LENGTH(len);
        if (len)
                memcpy(RTA_DATA(a), data, len);
        r->hdr.nlmsg_len = (uint32_t)total;
        return a;
}

static void nl_attr_str(struct nl_req *r, int type, const char *s)
{
        nl_attr(r, type, s, strlen(s) + 1);
}

static void nl_attr_u32(struct nl_req *r, int type, uint32_t v)
{
        nl_attr(r, type, &v, sizeof v);
}

static struct rtattr *nl_nest(struct nl_req *r, int type)
{
        return nl_attr(r, type, NULL, 0);
}

static void nl_nest_end(struct nl_req *r, struct rtattr *nest)
{
        if (nest)
                nest->rta_len = (unsigned short)((char *)nl_tail(r) - (char *)nest);
}

/* Sends the request and reads until its answer: an error message (0 is the ack) or, for a
 * query, the reply, copied into answer. */
static int nl_send(int nl, struct nl_req *r, void *answer, size_t answer_len)
{
        static __thread uint32_t seq;
        r->hdr.nlmsg_seq = ++seq;
        if (send(nl, r->buf, r->hdr.nlmsg_len, 0) < 0)
                return -errno;
        char buf[8192] __attribute__((aligned(4)));
        for (;;) {
                ssize_t n = recv(nl, buf, sizeof buf, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
                     h = NLMSG_NEXT(h, n)) {
                        if (h->nlmsg_seq != r->hdr.nlmsg_seq)
                                continue;
                        if (h->nlmsg_type == NLMSG_ERROR) {
                                struct nlmsgerr *e = NLMSG_DATA(h);
                                return e->error;
                        }
                        if (answer) {
                                size_t len = h->nlmsg_len < answer_len ? h->nlmsg_len : answer_len;
                                memcpy(answer, h, len);
                        }
                }
        }
}

int nl_open(void)
{
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        if (fd < 0)
                return -errno;
        struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
        struct timeval tv = {.tv_sec = 5};
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

/* Appends bytes that are not an attribute: the ifinfomsg that opens a veth peer's description. */
static void nl_raw(struct nl_req *r, const void *data, size_t len)
{
        size_t at = NLMSG_ALIGN(r->hdr.nlmsg_len);
        if (at + NLMSG_ALIGN(len) > sizeof r->buf)
                return;
        memcpy(r->buf + at, data, len);
        r->hdr.nlmsg_len = (uint32_t)(at + NLMSG_ALIGN(len));
}

int nl_bridge_add(int nl, const char *name, const uint8_t mac[6])
{
        struct nl_req r;
        struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
        nl_begin(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof ifi);
        nl_attr_str(&r, IFLA_IFNAME, name);
        nl_attr(&r, IFLA_ADDRESS, mac, 6);
        struct rtattr *info = nl_nest(&r, IFLA_LINKINFO);
        nl_attr_str(&r, IFLA_INFO_KIND, "bridge");
        nl_nest_end(&r, info);
        return nl_send(nl, &r, NULL, 0);
}

int nl_veth_add(int nl, const char *host_name, const char *peer_name, const uint8_t peer_mac[6],
                int peer_index, int netns_fd)
{
        struct nl_req r;
        struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
        nl_begin(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof ifi);
        nl_attr_str(&r, IFLA_IFNAME, host_name);
        struct rtattr *info = nl_nest(&r, IFLA_LINKINFO);
        nl_attr_str(&r, IFLA_INFO_KIND, "veth");
        struct rtattr *data = nl_nest(&r, IFLA_INFO_DATA);
        struct rtattr *peer = nl_nest(&r, VETH_INFO_PEER);
        /* The peer is described by an ifinfomsg of its own, then its attributes. */
        struct ifinfomsg peer_ifi = {.ifi_family = AF_UNSPEC, .ifi_index = peer_index};
        nl_raw(&r, &peer_ifi, sizeof peer_ifi);
        nl_attr_str(&r, IFLA_IFNAME, peer_name);
        nl_attr(&r, IFLA_ADDRESS, peer_mac, 6);
        nl_attr_u32(&r, IFLA_NET_NS_FD, (uint32_t)netns_fd);
        nl_nest_end(&r, peer);
        nl_nest_end(&r, data);
        nl_nest_end(&r, info);
        return nl_send(nl, &r, NULL, 0);
}

static int link_change(int nl, int index, const char *name, int master_index, bool up)
{
        struct nl_req r;
        struct ifinfomsg ifi = {
            .ifi_family = AF_UNSPEC, .ifi_index = index, .ifi_change = IFF_UP, .ifi_flags = up ? IFF_UP : 0};
        nl_begin(&r, RTM_NEWLINK, 0, &ifi, sizeof ifi);
        if (name)
                nl_attr_str(&r, IFLA_IFNAME, name);
        if (master_index > 0)
                nl_attr_u32(&r, IFLA_MASTER, (uint32_t)master_index);
        return nl_send(nl, &r, NULL, 0);
}

int nl_link_set(int nl, const char *name, int master_index, bool up)
{
        return link_change(nl, 0, name, master_index, up);
}

int nl_link_set_index(int nl, int index, bool up)
{
        return link_change(nl, index, NULL, 0, up);
}

int nl_link_del(int nl, const char *name)
{
        struct nl_req r;
        struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
        nl_begin(&r, RTM_DELLINK, 0, &ifi, sizeof ifi);
        nl_attr_str(&r, IFLA_IFNAME, name);
        return nl_send(nl, &r, NULL, 0);
}

int nl_addr_add(int nl, int index, uint32_t addr, int prefix)
{
        struct nl_req r;
        struct ifaddrmsg ifa = {
            .ifa_family = AF_INET, .ifa_prefixlen = (unsigned char)prefix, .ifa_index = (unsigned)index};
        nl_begin(&r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &ifa, sizeof ifa);
        nl_attr(&r, IFA_LOCAL, &addr, sizeof addr);
        nl_attr(&r, IFA_ADDRESS, &addr, sizeof addr);
        return nl_send(nl, &r, NULL, 0);
}

int nl_route_add_default(int nl, int index, uint32_t gateway)
{
        struct nl_req r;
        /* onlink: the gateway is reachable on the link although no prefix of the link's
         * address covers it. */
        struct rtmsg rtm = {.rtm_family = AF_INET,
                            .rtm_table = RT_TABLE_MAIN,
                            .rtm_protocol = RTPROT_STATIC,
                            .rtm_scope = RT_SCOPE_UNIVERSE,
                            .rtm_type = RTN_UNICAST,
                            .rtm_flags = RTNH_F_ONLINK};
        nl_begin(&r, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &rtm, sizeof rtm);
        nl_attr(&r, RTA_GATEWAY, &gateway, sizeof gateway);
        nl_attr_u32(&r, RTA_OIF, (uint32_t)index);
        return nl_send(nl, &r, NULL, 0);
}

int nl_link_index(int nl, const char *name)
{
        struct nl_req r;
        struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
        nl_begin(&r, RTM_GETLINK, 0, &ifi, sizeof ifi);
        nl_attr_str(&r, IFLA_IFNAME, name);
        union {
                struct nlmsghdr hdr;
                char buf[NLMSG_LENGTH(sizeof(struct ifinfomsg))];
        } answer = {0};
        int rc = nl_send(nl, &r, &answer, sizeof answer);
        if (rc < 0)
                return rc;
        if (answer.hdr.nlmsg_type != RTM_NEWLINK)
                return -ENODEV;
        return ((struct ifinfomsg *)NLMSG_DATA(&answer.hdr))->ifi_index;
}
