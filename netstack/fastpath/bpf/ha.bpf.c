/* The home agent's fast path (patent Fig. 10 steps 508-509 and 515-516): one tc ingress
 * program on the home link, maps owned by Python (netstack/fastpath/home_agent.py).
 *
 *   intercept: an IPv6 TCP/UDP packet for a home address with a binding -> hop limit - 1 ->
 *              IPv6-in-IPv6 HA -> CoA (RFC 2473) -> out to the default router;
 *   reverse:   IPv6-in-IPv6 from a registered CoA to the HA whose inner source is the home
 *              address bound to that CoA (RFC 6275 10.4.5) -> decapsulate -> hop limit - 1
 *              -> out to the default router (off-link destinations only).
 *
 * Everything else is passed on (TC_ACT_OK) to the Python path unchanged: ND, ICMPv6,
 * Mobility Header, ESP, extension headers, hop limit <= 1, packets that would not fit the
 * link MTU (Python answers Packet Too Big), on-link destinations, unknown bindings, and
 * everything while the default router is unresolved. TCP super-frames (TSO/GRO) for a home
 * address are encapsulated whole only with `super_frames` on (the mobile nodes decapsulate
 * them in their own fast path: a packet socket cannot read an IPv6-in-IPv6 super-frame);
 * else Python cuts them.
 */
#include "common.h"

char LICENSE[] SEC("license") = "GPL";

struct ha_state {
	__u8 address[16];
	__u8 home_prefix[16];
	__u8 home_mask[16];
	__u8 own_mac[6];
	__u8 router_mac[6];
	__u32 ifindex;
	__u16 mtu;
	__u8 enabled;
	__u8 super_frames; /* TCP GSO frames to a home address are tunnelled whole */
};

struct binding_value {
	__u8 coa[16];
	__u64 packets;
	__u64 bytes;
};

enum {
	ST_INTERCEPTED,
	ST_DETUNNELLED,
	ST_PASSED,
	ST_ERRORS,
	ST_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ha_state);
} state SEC(".maps");

/* home address -> care-of address (the binding cache's data-path view); sized by Python */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u8[16]);
	__type(value, struct binding_value);
} bindings SEC(".maps");

STATS_MAP(stats, ST_MAX);

static __always_inline int pass(void)
{
	count(&stats, ST_PASSED, 1);
	return TC_ACT_OK;
}

static __always_inline int fail(void)
{
	count(&stats, ST_ERRORS, 1);
	return TC_ACT_SHOT;
}

static __always_inline int on_link(const __u8 *address, const struct ha_state *st)
{
	const __u32 *a = (const __u32 *)address, *p = (const __u32 *)st->home_prefix,
		    *m = (const __u32 *)st->home_mask;
	return (a[0] & m[0]) == p[0] && (a[1] & m[1]) == p[1] && (a[2] & m[2]) == p[2] &&
	       (a[3] & m[3]) == p[3];
}

struct intercept_headers {
	struct eth_raw eth;
	struct ipv6_hdr_raw outer;
	__u32 inner_vtf;
	__u16 inner_payload_len;
	__u8 inner_next_header;
	__u8 inner_hop_limit;
} __attribute__((packed));

static __always_inline int intercept(struct __sk_buff *skb, struct ha_state *st,
				     struct ipv6_hdr_raw *ip, struct binding_value *binding)
{
	__u32 length = bpf_ntohs(ip->payload_len) + IP6_HLEN;
	/* what leaves: the packet, or a segment of a super-frame */
	__u32 largest = largest_packet(skb, length, skb->gso_size, ETH_HLEN_ + IP6_HLEN, IP6_HLEN);
	if (!largest || ip->hop_limit <= 1 || largest + IP6_HLEN > st->mtu)
		return pass(); /* Python drops or answers Packet Too Big */
	HEADERS(struct intercept_headers, h);
	tunnel_headers(&h->eth, &h->outer, st->router_mac, st->own_mac,
		       ipv6_traffic_class((const __u8 *)ip), length, st->address, binding->coa);
	h->inner_vtf = ip->vtf;
	h->inner_payload_len = ip->payload_len;
	h->inner_next_header = ip->next_header;
	h->inner_hop_limit = ip->hop_limit - 1;
	if (bpf_skb_adjust_room(skb, IP6_HLEN, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_ENCAP_L3_IPV6 | BPF_F_ADJ_ROOM_FIXED_GSO))
		return pass(); /* refused: the packet is untouched, Python forwards it */
	if (bpf_skb_store_bytes(skb, 0, h, sizeof(*h), 0))
		return fail();
	__sync_fetch_and_add(&binding->packets, 1);
	__sync_fetch_and_add(&binding->bytes, length);
	count(&stats, ST_INTERCEPTED, 1);
	return bpf_redirect(st->ifindex, 0);
}

struct forward_headers {
	struct eth_raw eth;
	__u32 vtf;
	__u16 payload_len;
	__u8 next_header;
	__u8 hop_limit;
} __attribute__((packed));

static __always_inline int reverse(struct __sk_buff *skb, struct ha_state *st,
				   struct ipv6_hdr_raw *outer, void *end)
{
	struct ipv6_hdr_raw *inner = (void *)(outer + 1);
	if ((void *)(inner + 1) + 4 > end)
		return pass();
	__u32 outer_len = bpf_ntohs(outer->payload_len);
	if (outer_len + IP6_HLEN != skb->len - ETH_HLEN_ ||
	    bpf_ntohs(inner->payload_len) + IP6_HLEN != outer_len)
		return pass();
	if ((inner->vtf & bpf_htonl(0xf0000000)) != bpf_htonl(0x60000000) || inner->hop_limit <= 1)
		return pass();
	if (inner->next_header != PROTO_TCP && inner->next_header != PROTO_UDP)
		return pass();
	if (on_link(inner->dst, st))
		return pass(); /* the home link: ND resolution in Python */
	struct binding_value *binding = bpf_map_lookup_elem(&bindings, inner->src);
	if (!binding || !addr_eq(binding->coa, outer->src))
		return pass(); /* Python counts rx_dropped_reverse_tunnel_no_binding */
	HEADERS(struct forward_headers, h);
	mac_copy(h->eth.dst, st->router_mac);
	mac_copy(h->eth.src, st->own_mac);
	h->eth.proto = bpf_htons(ETH_P_IPV6);
	h->vtf = inner->vtf;
	h->payload_len = inner->payload_len;
	h->next_header = inner->next_header;
	h->hop_limit = inner->hop_limit - 1;
	/* A GRO super-frame of the reverse tunnel leaves as a plain TCP/IPv6 GSO frame (the
	 * kernel cuts it on the way out): the decap flag clears its tunnel GSO type. */
	if (bpf_skb_adjust_room(skb, -IP6_HLEN, BPF_ADJ_ROOM_MAC,
				DECAP_FLAGS(skb->gso_size)))
		return pass(); /* refused (e.g. a kernel before 6.3 with a GRO frame): Python */
	if (bpf_skb_store_bytes(skb, 0, h, sizeof(*h), 0))
		return fail();
	__sync_fetch_and_add(&binding->packets, 1);
	__sync_fetch_and_add(&binding->bytes, outer_len);
	count(&stats, ST_DETUNNELLED, 1);
	return bpf_redirect(st->ifindex, 0);
}

SEC("tc")
int home_link_ingress(struct __sk_buff *skb)
{
	void *data, *end;
	__u32 key = 0;
	struct ha_state *st = bpf_map_lookup_elem(&state, &key);
	if (!st || !st->enabled || mac_zero(st->router_mac) || skb->protocol != bpf_htons(ETH_P_IPV6))
		return pass();
	if (linear(skb, ETH_HLEN_ + IP6_HLEN + 8, &data, &end))
		return pass();
	struct eth_raw *eth = data;
	struct ipv6_hdr_raw *ip = data + ETH_HLEN_;
	if ((ip->vtf & bpf_htonl(0xf0000000)) != bpf_htonl(0x60000000))
		return pass();
	if (bpf_ntohs(ip->payload_len) + IP6_HLEN != skb->len - ETH_HLEN_)
		return pass();
	if (ip->next_header == PROTO_IPV6 && addr_eq(ip->dst, st->address)) {
		if (linear(skb, ETH_HLEN_ + 2 * IP6_HLEN + 4, &data, &end))
			return pass();
		return reverse(skb, st, data + ETH_HLEN_, end);
	}
	if (ip->next_header != PROTO_TCP && ip->next_header != PROTO_UDP)
		return pass();
	if (skb->gso_size && (!st->super_frames || ip->next_header != PROTO_TCP))
		return pass(); /* Python cuts it: no IPXIP6 super-frame for a packet socket */
	/* Frames addressed to us (proxy ND answers for the home addresses with our MAC). */
	if (!mac_eq(eth->dst, st->own_mac))
		return pass();
	struct binding_value *binding = bpf_map_lookup_elem(&bindings, ip->dst);
	if (!binding)
		return pass();
	return intercept(skb, st, ip, binding);
}
