/* The sandboxes' DNS forwarder: dnsmasq on the gateway address, forwarding to dns_servers
 * (or the host's resolvers). Names in <state>/dns/hosts answer first.
 *
 * Domain names in egress policies are made honest here: for every domain some policy
 * names, dnsmasq puts the addresses its upstream answers for that domain (and the names
 * under it) into an nftables set of the node's table, dns_<hash>, before the answer reaches
 * the sandbox; the sandbox's egress chain matches the set. dnsmasq reads which domains to
 * follow only at start, so a policy naming a domain the node does not follow yet restarts
 * it (<state>/dns/domains.conf). */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "config.h"

#define DNS_ERR_MAX      256
#define DNS_SET_NAME_MAX 24
#define DNS_DOMAINS_MAX  4096 /* domains one node follows */

/* Starts the forwarder unless it runs. gateway is the address it answers on. */
int dns_forwarder_start(const struct warren_config *cfg, const char *gateway, char err[DNS_ERR_MAX]);

/* Makes sure the forwarder fills the sets of these domains (a JSON array of names; others
 * are skipped), restarting it if one is new. */
int dns_domains_follow(const struct warren_config *cfg, const char *bridge, const char *gateway,
                       json_t *names, char err[DNS_ERR_MAX]);

/* A lower-case domain name of two labels or more, as a policy may name: LDH labels of 1-63
 * characters, 253 in all, the last not all digits. */
bool dns_domain_valid(const char *s);

/* The nftables set dnsmasq fills for a domain: dns_<16 hex digits>. */
void dns_domain_set_name(const char *domain, char out[DNS_SET_NAME_MAX]);
