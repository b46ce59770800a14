/* Shared by the guest and home agent tc programs: headers, packet access, checksums.
 *
 * Every program returns TC_ACT_OK ("pass": the packet continues to the AF_PACKET socket of
 * the Python path, untouched) for anything it does not fully handle; only packets it has
 * rewritten completely leave through bpf_redirect.
 */
#ifndef MIP6TERM_FASTPATH_COMMON_H
#define MIP6TERM_FASTPATH_COMMON_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_HLEN_ 14
#define IP4_HLEN 20
#define IP6_HLEN 40
#define PROTO_TCP 6
#define PROTO_UDP 17
#define PROTO_IPV6 41
#define TCP_CSUM_OFF 16
#define TCP_DOFF_OFF 12

#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV6
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV6 (1ULL << 8) /* Linux 6.3; the Debian 12 headers predate it */
#endif
/* Removing a tunnel header from a super-frame: keep its segment size, drop its tunnel GSO
 * type (the kernel then cuts it as plain TCP/IPv6, or hands it whole to a local socket). */
#define DECAP_FLAGS(gso) ((gso) ? BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_DECAP_L3_IPV6 : 0)
#define UDP_CSUM_OFF 6
#define OUTER_HOP_LIMIT 64 /* netstack.wire.ip6ip6.encapsulate's default */

/* A view of the first `len` octets, pulled into the linear area when needed. */
static __always_inline int linear(struct __sk_buff *skb, __u32 len, void **data, void **end)
{
	if (skb->len < len)
		return -1;
	if ((void *)(long)skb->data + len > (void *)(long)skb->data_end && bpf_skb_pull_data(skb, len))
		return -1;
	void *start = (void *)(long)skb->data, *stop = (void *)(long)skb->data_end;
	/* Hide what the compiler knows about `stop`: the bounds check below must stay, on the
	 * register the verifier follows, even when an earlier check implied it. */
	asm volatile("" : "+r"(stop));
	if (start + len > stop)
		return -1;
	*data = start;
	*end = stop;
	return 0;
}

static __always_inline int addr_eq(const __u8 *a, const __u8 *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;
	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

static __always_inline void addr_copy(__u8 *dst, const __u8 *src)
{
	__u32 *d = (__u32 *)dst;
	const __u32 *s = (const __u32 *)src;
	d[0] = s[0];
	d[1] = s[1];
	d[2] = s[2];
	d[3] = s[3];
}

static __always_inline int prefix96_eq(const __u8 *a, const __u8 *prefix)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)prefix;
	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2];
}

static __always_inline int mac_eq(const __u8 *a, const __u8 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4] &&
	       a[5] == b[5];
}

static __always_inline int mac_zero(const __u8 *m)
{
	return !(m[0] | m[1] | m[2] | m[3] | m[4] | m[5]);
}

static __always_inline void mac_copy(__u8 *dst, const __u8 *src)
{
#pragma unroll
	for (int i = 0; i < 6; i++)
		dst[i] = src[i];
}

static __always_inline __u16 fold(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* Ones' complement sum of a 20-octet IPv4 header (0xffff when its checksum is right). */
static __always_inline __u16 ipv4_header_sum(const __u16 *words)
{
	__u64 sum = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += words[i];
	return fold(sum);
}

/* The IPv6 header's first word: version 6, traffic class, flow label 0. */
static __always_inline __u32 ipv6_first_word(__u8 traffic_class)
{
	return bpf_htonl(0x60000000 | ((__u32)traffic_class << 20));
}

static __always_inline __u8 ipv6_traffic_class(const __u8 *hdr)
{
	return ((hdr[0] & 0x0f) << 4) | (hdr[1] >> 4);
}

struct ipv6_hdr_raw {
	__u32 vtf;
	__u16 payload_len;
	__u8 next_header;
	__u8 hop_limit;
	__u8 src[16];
	__u8 dst[16];
} __attribute__((packed));

struct ipv4_hdr_raw {
	__u8 vihl;
	__u8 tos;
	__u16 total_len;
	__u16 ident;
	__u16 frag;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__u32 src;
	__u32 dst;
} __attribute__((packed));

struct eth_raw {
	__u8 dst[6];
	__u8 src[6];
	__u16 proto;
} __attribute__((packed));

/* Ethernet + outer IPv6 header of an IPv6-in-IPv6 tunnel packet (RFC 2473: traffic class
 * copied from the inner packet, the outer hop limit of netstack.wire.ip6ip6.encapsulate). */
static __always_inline void tunnel_headers(struct eth_raw *eth, struct ipv6_hdr_raw *outer,
					   const __u8 *dst_mac, const __u8 *src_mac,
					   __u8 traffic_class, __u32 payload_len,
					   const __u8 *src, const __u8 *dst)
{
	mac_copy(eth->dst, dst_mac);
	mac_copy(eth->src, src_mac);
	eth->proto = bpf_htons(ETH_P_IPV6);
	outer->vtf = ipv6_first_word(traffic_class);
	outer->payload_len = bpf_htons(payload_len);
	outer->next_header = PROTO_IPV6;
	outer->hop_limit = OUTER_HOP_LIMIT;
	addr_copy(outer->src, src);
	addr_copy(outer->dst, dst);
}

/* Headers written with one bpf_skb_store_bytes, built on the stack two octets into an aligned
 * buffer: after the 14-octet Ethernet header every address field is then 4-octet aligned,
 * as the verifier requires of stack stores. */
#define HEADERS(type, name)                                                                    \
	struct {                                                                               \
		__u16 pad;                                                                     \
		type hdr;                                                                      \
	} __attribute__((aligned(8))) name##_buffer;                                          \
	type *name = &name##_buffer.hdr

/* Per-CPU statistics: index -> packets */
#define STATS_MAP(name, n)                                                                     \
	struct {                                                                               \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);                                       \
		__uint(max_entries, n);                                                        \
		__type(key, __u32);                                                            \
		__type(value, __u64);                                                          \
	} name SEC(".maps")

/* The largest packet a TCP frame leaves as, its IP header `l3_len` octets and its TCP header
 * at `tcp_at` in the frame: the frame itself (`whole` octets), or for a super-frame one
 * segment of gso_size. 0 when the TCP header cannot be read (the caller passes it on). */
static __always_inline __u32 largest_packet(struct __sk_buff *skb, __u32 whole, __u32 gso,
					    __u32 tcp_at, __u32 l3_len)
{
	__u8 doff;
	if (!gso)
		return whole;
	if (bpf_skb_load_bytes(skb, tcp_at + TCP_DOFF_OFF, &doff, 1))
		return 0;
	return l3_len + (doff >> 4) * 4 + gso;
}

static __always_inline void count(void *map, __u32 index, __u64 n)
{
	__u64 *slot = bpf_map_lookup_elem(map, &index);
	if (slot)
		*slot += n;
}

#endif
