/* The guest's fast path (patent: IP packet processing unit 22 + IPv6 packet processing unit 24
 * for the common data packets). Two tc ingress programs, maps owned by Python
 * (netstack/fastpath/guest.py):
 *
 *   host_ingress    on virtual network 15 (the host link):
 *                   IPv4 TCP/UDP from the home IPv4 -> step 514 (RFC 7915 section 4, table 230
 *                   or the RFC 6052 prefix) -> step 515 (IPv6-in-IPv6 to the HA) -> redirect
 *                   out of the visited link to the default router;
 *                   IPv6 TCP/UDP from the home address (scenario 10001) -> tunnel -> redirect.
 *   visited_ingress on virtual network 14 (the visited link):
 *                   IPv6-in-IPv6 HA -> CoA -> step 510 (decapsulate) -> step 511 (RFC 7915
 *                   section 5) -> redirect to the host; or, for a host IPv6 flow, decapsulate
 *                   only. TCP super-frames (the HA tunnels them whole with `super_frames`)
 *                   are carried whole, to the host or, for the guest's own flows, into the
 *                   ingress of hoa0: a packet socket could not read them.
 *
 * Everything else is passed on (TC_ACT_OK) to the Python path, unchanged: ICMP and ICMPv6,
 * fragments, IPv4 options, extension headers, TTL/hop limit <= 1, UDP checksum 0, packets
 * that would need fragmenting or an ICMP error, unknown table-230 sources, pool addresses
 * without a row, flows Python has not seen the host open, GSO frames it cannot size, and all
 * of it while no binding is active. Output is byte-identical to the Python path (checked by
 * tests/unit/test_fastpath_differential.py with BPF_PROG_TEST_RUN).
 */
#include "common.h"

char LICENSE[] SEC("license") = "GPL";

/* One row of state that changes as a whole (a handover replaces CoA and next hop at once:
 * hash map updates swap the element, readers see the old or the new one, never a mix). */
struct guest_state {
	__u8 hoa[16];
	__u8 ha[16];
	__u8 coa[16];
	__u8 prefix64[12];	   /* RFC 6052 /96 prefix (prefix_ok) */
	__u32 home_ipv4;	   /* network order, as all addresses */
	__u32 gateway_ipv4;
	__u32 pool_net;
	__u32 pool_mask;
	__u8 next_hop_mac[6];	   /* default router on the visited link */
	__u8 visited_mac[6];	   /* our MAC on the visited link */
	__u8 host_mac[6];	   /* the host's MAC for IPv4 */
	__u8 host_ipv6_mac[6];	   /* the host's MAC for IPv6 */
	__u8 host_link_mac[6];	   /* our MAC on the host link */
	__u8 pad0[2];
	__u32 visited_ifindex;
	__u32 host_ifindex;
	__u16 ipv6_mtu;		   /* tunnel MTU: largest inner IPv6 packet (TranslatorConfig.ipv6_mtu) */
	__u16 lowest_ipv6_mtu;	   /* DF=0 packets above this are fragmented by Python */
	__u16 ipv4_mtu;		   /* host link MTU (larger: Packet Too Big from Python) */
	__u8 tunnel_up;
	__u8 translate;		   /* scenario 10000 on */
	__u8 passthrough;	   /* scenario 10001 on (host IPv6 apps) */
	__u8 prefix_ok;
	__u8 pad1[2];
	__u32 local_ifindex;	   /* hoa0: the guest's own applications */
};

struct v4_value {
	__u8 ipv6[16];
	__u64 packets;
	__u64 bytes;
};

struct v6_value {
	__u32 ipv4;
	__u32 pad;
	__u64 packets;
	__u64 bytes;
};

/* guest_agent.demux flow key of an outbound packet (side: 1 host IPv6, 2 host IPv4) */
struct flow_key {
	__u8 remote[16];
	__u16 local_port;
	__u16 remote_port;
	__u8 proto;
	__u8 pad[3];
};

enum {
	ST_OUT_TRANSLATED,
	ST_OUT_PASSTHROUGH,
	ST_IN_TRANSLATED,
	ST_IN_PASSTHROUGH,
	ST_PASSED_HOST,
	ST_PASSED_VISITED,
	ST_ERRORS,
	ST_IN_LOCAL,
	ST_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct guest_state);
} state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct v4_value);
} xlat_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u8[16]);
	__type(value, struct v6_value);
} xlat_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct flow_key);
	__type(value, __u32);
} flows SEC(".maps");

/* The RFC 7915 5.1 Identification generator (shared with nothing: Python has its own). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} ident SEC(".maps");

/* Ports whose packets only Python may carry (the SIP ALG's signalling ports), both ways. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u16);
	__type(value, __u8);
} python_ports SEC(".maps");

STATS_MAP(stats, ST_MAX);

#define SIDE_HOST_IPV6 1
#define SIDE_HOST_IPV4 2
#define SIDE_GUEST 3 /* pushed by Python: flows of the guest's own applications (hoa0) */

static __always_inline int pass(__u32 index)
{
	count(&stats, index, 1);
	return TC_ACT_OK;
}

static __always_inline int fail(void)
{
	count(&stats, ST_ERRORS, 1);
	return TC_ACT_SHOT;
}

static __always_inline struct guest_state *get_state(void)
{
	__u32 key = 0;
	return bpf_map_lookup_elem(&state, &key);
}

static __always_inline int python_port(__u16 sport, __u16 dport)
{
	return bpf_map_lookup_elem(&python_ports, &sport) || bpf_map_lookup_elem(&python_ports, &dport);
}

static __always_inline void note_flow(const __u8 *remote, __u16 local_port, __u16 remote_port,
				      __u8 proto, __u32 side)
{
	struct flow_key key = {};
	addr_copy(key.remote, remote);
	key.local_port = local_port;
	key.remote_port = remote_port;
	key.proto = proto;
	__u32 *found = bpf_map_lookup_elem(&flows, &key);
	if (!found || *found != side)
		bpf_map_update_elem(&flows, &key, &side, BPF_ANY);
}

/* ------------------------------------------------------------------ host link ingress */

struct out_headers {
	struct eth_raw eth;
	struct ipv6_hdr_raw outer;
	struct ipv6_hdr_raw inner;
} __attribute__((packed));

static __always_inline int host_ipv4(struct __sk_buff *skb, struct guest_state *st)
{
	void *data, *end;
	if (!st->translate || linear(skb, ETH_HLEN_ + IP4_HLEN + 8, &data, &end))
		return pass(ST_PASSED_HOST);
	struct ipv4_hdr_raw *ip = data + ETH_HLEN_;
	if (ip->vihl != 0x45 || ip->ttl <= 1 || (ip->frag & bpf_htons(0x3fff)))
		return pass(ST_PASSED_HOST);
	if (ip->src != st->home_ipv4 || ip->dst == st->gateway_ipv4)
		return pass(ST_PASSED_HOST);
	__u8 proto = ip->protocol;
	if (proto != PROTO_TCP && proto != PROTO_UDP)
		return pass(ST_PASSED_HOST);
	if (ipv4_header_sum((const __u16 *)ip) != 0xffff)
		return pass(ST_PASSED_HOST);
	if (proto == PROTO_TCP && linear(skb, ETH_HLEN_ + IP4_HLEN + 20, &data, &end))
		return pass(ST_PASSED_HOST);
	ip = data + ETH_HLEN_;
	__u32 total = bpf_ntohs(ip->total_len);
	__u32 gso = skb->gso_size;
	__u8 *l4 = data + ETH_HLEN_ + IP4_HLEN;
	__u16 sport = *(__u16 *)l4, dport = *(__u16 *)(l4 + 2);
	__u32 csum_off = proto == PROTO_TCP ? TCP_CSUM_OFF : UDP_CSUM_OFF;
	if (python_port(sport, dport))
		return pass(ST_PASSED_HOST); /* the SIP ALG rewrites these */
	if (proto == PROTO_UDP && *(__u16 *)(l4 + UDP_CSUM_OFF) == 0)
		return pass(ST_PASSED_HOST); /* Python computes it (RFC 7915 4.5) */
	__u32 limit = st->ipv6_mtu;
	if (!(ip->frag & bpf_htons(0x4000)) && st->lowest_ipv6_mtu < limit)
		limit = st->lowest_ipv6_mtu; /* DF=0 above this: Python fragments (RFC 7915 4.1) */
	if (gso) {
		/* A TSO/GRO super-frame: each segment must fit as the kernel will cut it. */
		__u32 l4_len = proto == PROTO_TCP ? (l4[12] >> 4) * 4 : 8;
		if (IP6_HLEN + l4_len + gso > limit)
			return pass(ST_PASSED_HOST);
	} else {
		if (total != skb->len - ETH_HLEN_)
			return pass(ST_PASSED_HOST); /* padding or truncation: Python decides */
		if (total + IP6_HLEN - IP4_HLEN > limit)
			return pass(ST_PASSED_HOST); /* fragment or Fragmentation Needed: Python */
	}

	/* Table 230 (step 514): a row, else outside the pool through the RFC 6052 prefix. */
	__u32 dst4 = ip->dst, src4 = ip->src;
	__u8 dst6[16];
	struct v4_value *row = bpf_map_lookup_elem(&xlat_v4, &dst4);
	__u32 segments = gso ? skb->gso_segs : 1, size = skb->len - ETH_HLEN_;
	if (row) {
		addr_copy(dst6, row->ipv6);
	} else {
		if ((dst4 & st->pool_mask) == st->pool_net || !st->prefix_ok)
			return pass(ST_PASSED_HOST);
		__builtin_memcpy(dst6, st->prefix64, 12);
		__builtin_memcpy(dst6 + 12, &dst4, 4);
	}
	__u8 tos = ip->tos, ttl = ip->ttl;

	HEADERS(struct out_headers, h);
	__u32 inner_len = total + IP6_HLEN - IP4_HLEN;
	tunnel_headers(&h->eth, &h->outer, st->next_hop_mac, st->visited_mac, tos,
		       inner_len > 0xffff ? 0xffff : inner_len, st->coa, st->ha);
	h->inner.vtf = ipv6_first_word(tos);
	h->inner.payload_len = bpf_htons(total - IP4_HLEN);
	h->inner.next_header = proto;
	h->inner.hop_limit = ttl - 1;
	addr_copy(h->inner.src, st->hoa);
	addr_copy(h->inner.dst, dst6);

	note_flow(dst6, sport, dport, proto, SIDE_HOST_IPV4);

	/* RFC 7915 4.5: the pseudo-header changes from (src4, dst4) to (HoA, dst6). */
	__u32 old_addrs[2] = {src4, dst4};
	__s64 diff = bpf_csum_diff(old_addrs, 8, (__be32 *)h->inner.src, 32, 0);
	if (diff < 0)
		return pass(ST_PASSED_HOST);
	/* First the step that may refuse (e.g. a GSO type the kernel cannot convert): the
	 * packet is still untouched then and goes to Python. */
	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IPV6), 0))
		return pass(ST_PASSED_HOST);
	__u64 flags = BPF_F_PSEUDO_HDR | (proto == PROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0);
	if (bpf_l4_csum_replace(skb, ETH_HLEN_ + IP6_HLEN + csum_off, 0, (__u32)diff, flags))
		return fail();
	if (bpf_skb_adjust_room(skb, IP6_HLEN, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_ENCAP_L3_IPV6 | BPF_F_ADJ_ROOM_FIXED_GSO))
		return fail();
	if (bpf_skb_store_bytes(skb, 0, h, sizeof(*h), 0))
		return fail();
	if (row) { /* table 230's use of the row, read back by Python (idle expiry) */
		__sync_fetch_and_add(&row->packets, segments);
		__sync_fetch_and_add(&row->bytes, size);
	}
	count(&stats, ST_OUT_TRANSLATED, 1);
	return bpf_redirect(st->visited_ifindex, 0);
}

struct encap_headers {
	struct eth_raw eth;
	struct ipv6_hdr_raw outer;
} __attribute__((packed));

static __always_inline int host_ipv6(struct __sk_buff *skb, struct guest_state *st)
{
	void *data, *end;
	if (!st->passthrough || skb->gso_size || linear(skb, ETH_HLEN_ + IP6_HLEN + 8, &data, &end))
		return pass(ST_PASSED_HOST);
	struct ipv6_hdr_raw *ip = data + ETH_HLEN_;
	__u8 proto = ip->next_header;
	if ((ip->vtf & bpf_htonl(0xf0000000)) != bpf_htonl(0x60000000) || !addr_eq(ip->src, st->hoa))
		return pass(ST_PASSED_HOST);
	if (proto != PROTO_TCP && proto != PROTO_UDP)
		return pass(ST_PASSED_HOST);
	__u32 length = bpf_ntohs(ip->payload_len) + IP6_HLEN;
	if (length != skb->len - ETH_HLEN_ || length > st->ipv6_mtu)
		return pass(ST_PASSED_HOST);
	__u8 *l4 = data + ETH_HLEN_ + IP6_HLEN;
	if (python_port(*(__u16 *)l4, *(__u16 *)(l4 + 2)))
		return pass(ST_PASSED_HOST); /* the SIP ALG reads these (media ports of E2 phones) */
	note_flow(ip->dst, *(__u16 *)l4, *(__u16 *)(l4 + 2), proto, SIDE_HOST_IPV6);

	HEADERS(struct encap_headers, h);
	tunnel_headers(&h->eth, &h->outer, st->next_hop_mac, st->visited_mac,
		       ipv6_traffic_class((const __u8 *)ip), length, st->coa, st->ha);
	if (bpf_skb_adjust_room(skb, IP6_HLEN, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_ENCAP_L3_IPV6 | BPF_F_ADJ_ROOM_FIXED_GSO))
		return pass(ST_PASSED_HOST); /* refused: untouched, Python */
	if (bpf_skb_store_bytes(skb, 0, h, sizeof(*h), 0))
		return fail();
	count(&stats, ST_OUT_PASSTHROUGH, 1);
	return bpf_redirect(st->visited_ifindex, 0);
}

SEC("tc")
int host_ingress(struct __sk_buff *skb)
{
	struct guest_state *st = get_state();
	if (!st || !st->tunnel_up || mac_zero(st->next_hop_mac))
		return pass(ST_PASSED_HOST);
	if (skb->protocol == bpf_htons(ETH_P_IP))
		return host_ipv4(skb, st);
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return host_ipv6(skb, st);
	return pass(ST_PASSED_HOST);
}

/* ------------------------------------------------------------------ visited link ingress */

struct in4_headers {
	struct eth_raw eth;
	struct ipv4_hdr_raw ip;
} __attribute__((packed));

static __always_inline int to_host_ipv4(struct __sk_buff *skb, struct guest_state *st,
					struct ipv6_hdr_raw *inner, __u8 *l4, __u32 gso)
{
	__u8 proto = inner->next_header;
	if (!st->translate || mac_zero(st->host_mac) || inner->hop_limit <= 1)
		return pass(ST_PASSED_VISITED);
	if (proto == PROTO_UDP && *(__u16 *)(l4 + UDP_CSUM_OFF) == 0)
		return pass(ST_PASSED_VISITED);
	__u32 payload = bpf_ntohs(inner->payload_len);
	__u32 total = payload + IP4_HLEN;
	/* a super-frame leaves as segments of gso_size (DF set, ID 0: each is above 1260 octets
	 * but perhaps the last, which Python would give an ID and no DF) */
	__u32 largest = largest_packet(skb, total, gso, ETH_HLEN_ + 2 * IP6_HLEN, IP4_HLEN);
	if (!largest || largest > st->ipv4_mtu)
		return pass(ST_PASSED_VISITED); /* Packet Too Big from Python */
	/* Table 230 (step 511): a row, else the RFC 6052 prefix; a new peer needs Python. */
	__u32 src4;
	struct v6_value *row = bpf_map_lookup_elem(&xlat_v6, inner->src);
	if (row) {
		src4 = row->ipv4;
	} else {
		if (!st->prefix_ok || !prefix96_eq(inner->src, st->prefix64))
			return pass(ST_PASSED_VISITED);
		__builtin_memcpy(&src4, inner->src + 12, 4);
	}
	HEADERS(struct in4_headers, h);
	mac_copy(h->eth.dst, st->host_mac);
	mac_copy(h->eth.src, st->host_link_mac);
	h->eth.proto = bpf_htons(ETH_P_IP);
	h->ip.vihl = 0x45;
	h->ip.tos = ipv6_traffic_class((const __u8 *)inner);
	h->ip.total_len = bpf_htons(total);
	if (total <= 1260) { /* RFC 7915 5.1 / RFC 6864: small packets get an ID, no DF */
		__u32 zero = 0;
		__u64 *counter = bpf_map_lookup_elem(&ident, &zero);
		if (!counter)
			return pass(ST_PASSED_VISITED);
		__u64 old = __sync_fetch_and_add(counter, 1);
		h->ip.ident = bpf_htons((__u16)(old % 0xffff) + 1);
		h->ip.frag = 0;
	} else {
		h->ip.ident = 0;
		h->ip.frag = bpf_htons(0x4000);
	}
	h->ip.ttl = inner->hop_limit - 1;
	h->ip.protocol = proto;
	h->ip.check = 0;
	h->ip.src = src4;
	h->ip.dst = st->home_ipv4;
	h->ip.check = ~ipv4_header_sum((const __u16 *)&h->ip);

	__u32 new_addrs[2] = {src4, st->home_ipv4};
	__s64 diff = bpf_csum_diff((__be32 *)inner->src, 32, new_addrs, 8, 0);
	if (diff < 0)
		return pass(ST_PASSED_VISITED);
	__u32 csum_at = ETH_HLEN_ + IP6_HLEN + (proto == PROTO_TCP ? TCP_CSUM_OFF : UDP_CSUM_OFF);
	__u64 flags = BPF_F_PSEUDO_HDR | (proto == PROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0);
	__u32 host_ifindex = st->host_ifindex;
	/* The step that may refuse comes first: on refusal the packet is untouched (Python). */
	if (bpf_skb_adjust_room(skb, -IP6_HLEN, BPF_ADJ_ROOM_MAC, DECAP_FLAGS(gso)))
		return pass(ST_PASSED_VISITED);
	if (bpf_l4_csum_replace(skb, csum_at, 0, (__u32)diff, flags))
		return fail();
	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IP), 0))
		return fail();
	if (bpf_skb_store_bytes(skb, 0, h, sizeof(*h), 0))
		return fail();
	if (row) {
		__sync_fetch_and_add(&row->packets, 1);
		__sync_fetch_and_add(&row->bytes, payload + IP6_HLEN);
	}
	count(&stats, ST_IN_TRANSLATED, 1);
	return bpf_redirect(host_ifindex, 0);
}

static __always_inline int to_host_ipv6(struct __sk_buff *skb, struct guest_state *st, __u32 gso)
{
	if (!st->passthrough || mac_zero(st->host_ipv6_mac))
		return pass(ST_PASSED_VISITED);
	struct eth_raw eth;
	mac_copy(eth.dst, st->host_ipv6_mac);
	mac_copy(eth.src, st->host_link_mac);
	eth.proto = bpf_htons(ETH_P_IPV6);
	__u32 host_ifindex = st->host_ifindex;
	if (bpf_skb_adjust_room(skb, -IP6_HLEN, BPF_ADJ_ROOM_MAC, DECAP_FLAGS(gso)))
		return pass(ST_PASSED_VISITED); /* refused: untouched, Python */
	if (bpf_skb_store_bytes(skb, 0, &eth, sizeof(eth), 0))
		return fail();
	count(&stats, ST_IN_PASSTHROUGH, 1);
	return bpf_redirect(host_ifindex, 0);
}

/* A super-frame of the guest's own flow: decapsulated into hoa0's ingress, where the guest's
 * kernel takes it as Python's write to the TUN would (a packet socket cannot read it). */
static __always_inline int to_guest(struct __sk_buff *skb, struct guest_state *st)
{
	__u32 local_ifindex = st->local_ifindex;
	if (!local_ifindex)
		return pass(ST_PASSED_VISITED);
	if (bpf_skb_adjust_room(skb, -IP6_HLEN, BPF_ADJ_ROOM_MAC, DECAP_FLAGS(1)))
		return pass(ST_PASSED_VISITED);
	count(&stats, ST_IN_LOCAL, 1);
	return bpf_redirect(local_ifindex, BPF_F_INGRESS);
}

/* Receive routine 120's default side for a flow it has not seen (guest_agent.demux). */
static __always_inline __u32 default_side(const struct guest_state *st)
{
	return st->translate ? SIDE_HOST_IPV4 : st->passthrough ? SIDE_HOST_IPV6 : SIDE_GUEST;
}

SEC("tc")
int visited_ingress(struct __sk_buff *skb)
{
	void *data, *end;
	struct guest_state *st = get_state();
	if (!st || !st->tunnel_up || skb->protocol != bpf_htons(ETH_P_IPV6))
		return pass(ST_PASSED_VISITED);
	__u32 gso = skb->gso_size;
	if (linear(skb, ETH_HLEN_ + 2 * IP6_HLEN + 8, &data, &end))
		return pass(ST_PASSED_VISITED);
	struct ipv6_hdr_raw *outer = data + ETH_HLEN_;
	struct ipv6_hdr_raw *inner = data + ETH_HLEN_ + IP6_HLEN;
	__u8 *l4 = data + ETH_HLEN_ + 2 * IP6_HLEN;
	if ((outer->vtf & bpf_htonl(0xf0000000)) != bpf_htonl(0x60000000) ||
	    outer->next_header != PROTO_IPV6)
		return pass(ST_PASSED_VISITED);
	/* Step 510: for our CoA, from the home agent only, lengths exact. */
	if (!addr_eq(outer->dst, st->coa) || !addr_eq(outer->src, st->ha))
		return pass(ST_PASSED_VISITED);
	__u32 outer_len = bpf_ntohs(outer->payload_len);
	if (outer_len + IP6_HLEN != skb->len - ETH_HLEN_ ||
	    bpf_ntohs(inner->payload_len) + IP6_HLEN != outer_len)
		return pass(ST_PASSED_VISITED);
	if ((inner->vtf & bpf_htonl(0xf0000000)) != bpf_htonl(0x60000000) ||
	    !addr_eq(inner->dst, st->hoa))
		return pass(ST_PASSED_VISITED);
	__u8 proto = inner->next_header;
	if (proto != PROTO_TCP && (proto != PROTO_UDP || gso))
		return pass(ST_PASSED_VISITED);
	if (python_port(*(__u16 *)l4, *(__u16 *)(l4 + 2)))
		return pass(ST_PASSED_VISITED);
	/* Receive routine 120's demultiplexer: only flows the host opened through us. */
	struct flow_key key = {};
	addr_copy(key.remote, inner->src);
	key.local_port = *(__u16 *)(l4 + 2);
	key.remote_port = *(__u16 *)l4;
	key.proto = proto;
	__u32 *found = bpf_map_lookup_elem(&flows, &key);
	if (!found && !gso)
		return pass(ST_PASSED_VISITED); /* a new flow: Python decides and records it */
	__u32 side = found ? *found : default_side(st);
	if (side == SIDE_HOST_IPV4)
		return to_host_ipv4(skb, st, inner, l4, gso);
	if (side == SIDE_HOST_IPV6)
		return to_host_ipv6(skb, st, gso);
	if (side == SIDE_GUEST && gso)
		return to_guest(skb, st);
	return pass(ST_PASSED_VISITED); /* the guest's own packets: Python writes them to hoa0 */
}
