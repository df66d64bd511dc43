/* A sandbox's own nftables entries, written as one netlink batch (libnftnl), without the
 * ruleset read libnftables makes before every change. See nft_batch.c. */
#pragma once

#include <stdint.h>

struct nft_sandbox_entries {
        const char *table; /* the node's tables (inet and bridge) share the bridge's name */
        const char *chain; /* the sandbox's egress chain: sb_<id> */
        uint32_t address;  /* network order */
        const char *port;  /* its host-side link */
        uint8_t mac[6];    /* the address of its eth0 */
};

/* In one transaction: the sandbox's chain (emptied, then "accept": the default policy), its
 * entry in the inet table's egress map (address : goto chain), and its entry in the bridge
 * table's ports set (port . mac . address, what the bridge lets it send as). Returns 0, or
 * -errno with *ret_step naming the step that failed (the part the kernel refused). */
int nft_batch_sandbox_add(const struct nft_sandbox_entries *e, const char **ret_step);
