/* A few rtnetlink requests, written out by hand: what a sandbox's link needs (a bridge, a
 * veth pair whose peer lands in another network namespace, addresses, a default route),
 * with no process started and no library state. Every call sends one request on the given
 * NETLINK_ROUTE socket and waits for its acknowledgement; the socket's network namespace is
 * the one it was opened in, which is how a caller configures a namespace it is not in.
 * Each returns 0 or -errno. Addresses are IPv4 in network byte order. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

int nl_open(void);

/* A bridge named name with the given MAC (EEXIST if one is there). */
int nl_bridge_add(int nl, const char *name, const uint8_t mac[6]);

/* A veth pair: host_name stays in nl's namespace; the peer, named peer_name with the given
 * MAC and interface index, is created inside the namespace netns_fd refers to. */
int nl_veth_add(int nl, const char *host_name, const char *peer_name, const uint8_t peer_mac[6],
                int peer_index, int netns_fd);

/* Enslaves the link to master (0: leave it) and brings it up or down. */
int nl_link_set(int nl, const char *name, int master_index, bool up);
int nl_link_set_index(int nl, int index, bool up);
int nl_link_del(int nl, const char *name);

int nl_addr_add(int nl, int index, uint32_t addr, int prefix);
int nl_route_add_default(int nl, int index, uint32_t gateway);

/* The index of the link called name in nl's namespace, or -errno. */
int nl_link_index(int nl, const char *name);
