/* A sandbox's nftables entries in one netlink batch.
 *
 * libnftables reads the tables it changes into its cache before each change (their chains,
 * sets and maps), so every cold create paid for a read of every other sandbox's entries:
 * 0.29 ms alone on an empty node, 0.56 ms with 400 sandboxes, and about 1 ms in a create,
 * where it shares the cores with the launch. What a create adds is known in advance and
 * always the same five messages, so they are built here with libnftnl and sent as one
 * transaction: the kernel applies all of them or none. Policy changes and removals, which
 * are rarer and vary, stay with libnftables (network.c). */
#include "nft_batch.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

enum { MSG_CHAIN, MSG_FLUSH, MSG_RULE, MSG_EGRESS, MSG_PORTS, MSGS };

static const char *const msg_steps[MSGS] = {"add the sandbox's chain", "empty the sandbox's chain",
                                            "add its default rule", "add its egress map entry",
                                            "add its bridge ports entry"};

static struct nftnl_chain *chain_of(const struct nft_sandbox_entries *e)
{
        struct nftnl_chain *c = nftnl_chain_alloc();
        if (c) {
                nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, e->table);
                nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, e->chain);
        }
        return c;
}

/* A rule of the chain: "accept", or none at all (which, deleted, flushes the chain). */
static struct nftnl_rule *rule_of(const struct nft_sandbox_entries *e, bool accept)
{
        struct nftnl_rule *r = nftnl_rule_alloc();
        if (!r)
                return NULL;
        nftnl_rule_set_str(r, NFTNL_RULE_TABLE, e->table);
        nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, e->chain);
        if (accept) {
                struct nftnl_expr *x = nftnl_expr_alloc("immediate");
                if (!x) {
                        nftnl_rule_free(r);
                        return NULL;
                }
                nftnl_expr_set_u32(x, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
                nftnl_expr_set_u32(x, NFTNL_EXPR_IMM_VERDICT, NF_ACCEPT);
                nftnl_rule_add_expr(r, x);
        }
        return r;
}

/* A set (or map) of the table holding one element with the given key; the caller sets its data. */
static struct nftnl_set *set_with(const char *table, const char *name, const void *key, uint32_t key_len,
                                  struct nftnl_set_elem **ret_elem)
{
        struct nftnl_set *s = nftnl_set_alloc();
        struct nftnl_set_elem *el = nftnl_set_elem_alloc();
        if (!s || !el) { /* libnftnl's frees take no NULL */
                if (s)
                        nftnl_set_free(s);
                if (el)
                        nftnl_set_elem_free(el);
                return NULL;
        }
        nftnl_set_set_str(s, NFTNL_SET_TABLE, table);
        nftnl_set_set_str(s, NFTNL_SET_NAME, name);
        nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY, key, key_len);
        nftnl_set_elem_add(s, el);
        *ret_elem = el;
        return s;
}

/* The bridge's key: port . mac . address, each part padded to 32-bit registers as nft lays
 * out a concatenation (an interface name takes IFNAMSIZ bytes). */
static uint32_t ports_key(const struct nft_sandbox_entries *e, uint8_t key[IFNAMSIZ + 8 + 4])
{
        memset(key, 0, IFNAMSIZ + 8 + 4);
        strncpy((char *)key, e->port, IFNAMSIZ - 1);
        memcpy(key + IFNAMSIZ, e->mac, 6);
        memcpy(key + IFNAMSIZ + 8, &e->address, 4);
        return IFNAMSIZ + 8 + 4;
}

/* Builds the batch into buf; its length, or 0 if memory ran out. */
static size_t batch_build(const struct nft_sandbox_entries *e, char *buf, size_t size, uint32_t seq)
{
        struct mnl_nlmsg_batch *b = mnl_nlmsg_batch_start(buf, size);
        if (!b)
                return 0;
        nftnl_batch_begin(mnl_nlmsg_batch_current(b), seq++);
        mnl_nlmsg_batch_next(b);
        struct nftnl_chain *chain = chain_of(e);
        struct nftnl_rule *flush = rule_of(e, false), *accept = rule_of(e, true);
        struct nftnl_set_elem *egress_el = NULL, *ports_el = NULL;
        struct nftnl_set *egress = set_with(e->table, "egress", &e->address, 4, &egress_el);
        uint8_t key[IFNAMSIZ + 8 + 4];
        struct nftnl_set *ports = set_with(e->table, "ports", key, ports_key(e, key), &ports_el);
        size_t len = 0;
        if (chain && flush && accept && egress && ports) {
                nftnl_set_elem_set_u32(egress_el, NFTNL_SET_ELEM_VERDICT, (uint32_t)NFT_GOTO);
                nftnl_set_elem_set_str(egress_el, NFTNL_SET_ELEM_CHAIN, e->chain);
                struct nlmsghdr *h;
                h = nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(b), NFT_MSG_NEWCHAIN, NFPROTO_INET,
                                          NLM_F_CREATE | NLM_F_ACK, seq + MSG_CHAIN);
                nftnl_chain_nlmsg_build_payload(h, chain);
                mnl_nlmsg_batch_next(b);
                h = nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(b), NFT_MSG_DELRULE, NFPROTO_INET,
                                          NLM_F_ACK, seq + MSG_FLUSH);
                nftnl_rule_nlmsg_build_payload(h, flush);
                mnl_nlmsg_batch_next(b);
                h = nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(b), NFT_MSG_NEWRULE, NFPROTO_INET,
                                          NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK, seq + MSG_RULE);
                nftnl_rule_nlmsg_build_payload(h, accept);
                mnl_nlmsg_batch_next(b);
                h = nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(b), NFT_MSG_NEWSETELEM, NFPROTO_INET,
                                          NLM_F_CREATE | NLM_F_ACK, seq + MSG_EGRESS);
                nftnl_set_elems_nlmsg_build_payload(h, egress);
                mnl_nlmsg_batch_next(b);
                h = nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(b), NFT_MSG_NEWSETELEM, NFPROTO_BRIDGE,
                                          NLM_F_CREATE | NLM_F_ACK, seq + MSG_PORTS);
                nftnl_set_elems_nlmsg_build_payload(h, ports);
                mnl_nlmsg_batch_next(b);
                nftnl_batch_end(mnl_nlmsg_batch_current(b), seq + MSGS);
                mnl_nlmsg_batch_next(b);
                len = mnl_nlmsg_batch_size(b);
        }
        if (chain)
                nftnl_chain_free(chain);
        if (flush)
                nftnl_rule_free(flush);
        if (accept)
                nftnl_rule_free(accept);
        if (egress)
                nftnl_set_free(egress); /* and its element */
        if (ports)
                nftnl_set_free(ports);
        mnl_nlmsg_batch_stop(b);
        return len;
}

/* Reads the kernel's answers, one per message (each asks for an acknowledgement), until
 * all are in or one is a refusal. */
static int batch_answers(struct mnl_socket *nl, uint32_t seq, const char **ret_step)
{
        char buf[MNL_SOCKET_BUFFER_SIZE];
        int acked = 0;
        *ret_step = "read the kernel's answers";
        while (acked < MSGS) {
                ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof buf);
                if (n < 0)
                        return -errno;
                int left = (int)n;
                for (const struct nlmsghdr *h = (const void *)buf; mnl_nlmsg_ok(h, left);
                     h = mnl_nlmsg_next(h, &left)) {
                        /* The batch's begin message (seq - 1) is answered only with an error
                         * that refuses the whole batch (no permission, no memory, a ruleset
                         * changed under it). */
                        uint32_t at = h->nlmsg_seq - (seq - 1);
                        if (h->nlmsg_type != NLMSG_ERROR || at > MSGS ||
                            mnl_nlmsg_get_payload_len(h) < sizeof(struct nlmsgerr))
                                continue;
                        const struct nlmsgerr *e = mnl_nlmsg_get_payload(h);
                        if (e->error) {
                                *ret_step = at == 0 ? "start the batch" : msg_steps[at - 1];
                                return e->error;
                        }
                        acked += at > 0;
                }
        }
        return 0;
}

int nft_batch_sandbox_add(const struct nft_sandbox_entries *e, const char **ret_step)
{
        static char buf[8192]; /* callers hold network.c's nftables lock */
        uint32_t seq = (uint32_t)time(NULL) << 8;
        *ret_step = "build the messages";
        size_t len = batch_build(e, buf, sizeof buf, seq);
        if (!len)
                return -ENOMEM;
        *ret_step = "open a netlink socket";
        struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
        if (!nl)
                return -errno;
        struct timeval tv = {.tv_sec = 2};
        int r = 0;
        if (setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
            mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0)
                r = -errno;
        else if ((*ret_step = "send the messages", mnl_socket_sendto(nl, buf, len) < 0))
                r = -errno;
        else
                r = batch_answers(nl, seq + 1, ret_step);
        mnl_socket_close(nl);
        return r;
}
