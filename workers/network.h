/* A network per sandbox. The node has a bridge (network_bridge, holding the subnet's first
 * address as the sandboxes' gateway and DNS forwarder); each sandbox has a veth pair, eth0
 * inside with an address of its own, the other end an isolated port of the bridge. The
 * address follows the sandbox's uid slot (the slot's Redis bit is freed only once the last
 * process is gone, so an address is never given out while still in use).
 *
 * What a sandbox may reach is the kernel's business (nftables, tables named after the
 * bridge): a bridge-family table drops any frame from a port whose MAC and address are not
 * that port's own (spoofing, ARP poisoning, IPv6); an inet table accepts nothing from the
 * bridge to the host but DNS to the forwarder and answers to connections the host opened,
 * forwards nothing into the bridge that a sandbox did not open (so no sandbox reaches
 * another), drops link-local and the node's own service addresses, and hands the rest to
 * the sandbox's egress chain (its allow and deny lists, then internet on or off). */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "config.h"

#define NETWORK_ERR_MAX 256

struct network {
        char bridge[16];
        uint32_t subnet; /* host byte order */
        int prefix;
        uint32_t gateway; /* the subnet's first address */
};

int network_parse(const struct warren_config *cfg, struct network *ret, char err[NETWORK_ERR_MAX]);

/* How many sandboxes the subnet holds; slots past it cannot be used. */
long long network_slot_count(const struct network *n);

/* The sandbox's address for a slot, as text. */
void network_address_text(const struct network *n, long long slot, char out[16]);

void network_gateway_text(const struct network *n, char out[16]);

/* The master, at start: bridge, forwarding, the base ruleset, the DNS forwarder. Idempotent, and it keeps the
 * running sandboxes' entries, so a restarted master adopts them as they are. */
int network_node_setup(const struct warren_config *cfg, char err[NETWORK_ERR_MAX]);

/* Makes a network namespace for the slot's sandbox, owned by the host (root inside a
 * sandbox can configure nothing in it), with no link yet. Returns its fd, and in *ret_nl a
 * netlink socket inside it for network_sandbox_wire. */
int network_sandbox_netns(const struct network *n, long long slot, int *ret_nl, char err[NETWORK_ERR_MAX]);

/* Gives the namespace eth0, addressed for the slot and routed through the gateway, plugged
 * into the bridge, and registered with the default egress policy. A sandbox may already run
 * in it. What a failure leaves, network_sandbox_release removes. */
int network_sandbox_wire(const struct network *n, const char *id, long long slot, int netns, int nl,
                         char err[NETWORK_ERR_MAX]);

/* Validates an egress policy from a request: {internet?, allow_out?, deny_out?} with IPv4
 * addresses, CIDRs or domain names (dns.h). Returns the canonical policy, or NULL with err. */
json_t *network_policy_parse(json_t *in, char err[NETWORK_ERR_MAX]);

/* The default: internet on, no lists. */
json_t *network_policy_default(void);

/* Replaces the sandbox's egress chain with the policy (one nftables transaction). */
int network_policy_apply(const struct warren_config *cfg, const char *id, json_t *policy,
                         char err[NETWORK_ERR_MAX]);

/* Removes the sandbox's rules and its link. */
void network_sandbox_release(const struct warren_config *cfg, const char *id, long long slot);
