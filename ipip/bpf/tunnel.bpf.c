// SPDX-License-Identifier: Apache-2.0
//
// IPIP (RFC 2003) for kernels without the ipip module, in two eBPF programs:
//
// - podroute_encap, a lightweight-tunnel `xmit` program on pod-block routes
//   (`B via NH dev eth0 onlink encap bpf xmit ... headroom 20`): it pushes the
//   outer IPv4 header towards the node that owns the inner destination (the
//   LPM map pr_blocks) and asks the kernel to route the packet again by its
//   new outer header (BPF_LWT_REROUTE).
// - podroute_decap, a tc ingress program on the underlay device: IPIP sent to
//   this node by a known node (the hash map pr_nodes) loses its outer header
//   and goes on as the inner packet; IPIP from anyone else is dropped and
//   counted, as the nftables filter does for the kernel's tunl0.
//
// The agent keeps the maps current (ipip/src/bpf/). Built by ipip/build.rs
// with `clang -target bpf`.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

// include/uapi/asm-generic/errno.h
#define PR_EPROTONOSUPPORT 93

#define PR_IP_DF 0x4000
#define PR_IP_MF 0x2000
#define PR_IP_OFFSET 0x1fff
#define PR_ECN_MASK 3
#define PR_ECN_ECT_0 2
#define PR_ECN_CE 3

// Keep in step with ipip/src/bpf/maps.rs.
enum pr_counter {
	PR_ENCAPSULATED = 0,
	PR_ENCAP_NO_NODE = 1,
	PR_ENCAP_ERROR = 2,
	PR_ENCAP_GSO_SWITCHED = 3,
	PR_DECAPSULATED = 4,
	PR_DECAP_NOT_NODE = 5,
	PR_DECAP_FRAGMENT = 6,
	PR_DECAP_ERROR = 7,
	PR_COUNTERS = 8,
};

// How GSO packets get their outer header (see podroute_encap). The
// kernel's handle_gso_encap() (net/core/lwt_bpf.c) marks a pushed IPv4
// header SKB_GSO_IPXIP4 only when its protocol is IPPROTO_IP, and refuses
// IPPROTO_IPIP with -EPROTONOSUPPORT, in the kernels tried (Debian 12's 6.1
// and 6.18). The program starts with what those kernels take, and a kernel that
// refuses it (one whose check was corrected to IPPROTO_IPIP) makes it
// switch; either way the mode found stays in the pinned settings map.
enum pr_gso_mode {
	// Push protocol 0 and write 4 afterwards (0: a new map's value).
	PR_GSO_IP_THEN_IPIP = 0,
	// Push protocol 4 (IPPROTO_IPIP), as RFC 2003 says.
	PR_GSO_IPIP = 1,
};

struct pr_lpm_key {
	__u32 prefixlen;
	__u32 addr; // network order
};

struct pr_settings {
	__u32 local;    // this node's address, network order: outer source
	__u32 gso_mode; // enum pr_gso_mode
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__type(key, struct pr_lpm_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} pr_blocks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u32);
} pr_nodes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pr_settings);
} pr_settings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PR_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} pr_counters SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&pr_counters, &which);
	if (n)
		*n += 1;
}

// RFC 6040 §4.1 normal mode, as the kernel's INET_ECN_encapsulate with a
// tunnel TOS of 0: the outer ECN field copies the inner one, CE becomes
// ECT(0); the outer DSCP is 0.
static __always_inline __u8 outer_tos(__u8 inner)
{
	__u8 ecn = inner & PR_ECN_MASK;
	return ecn == PR_ECN_CE ? PR_ECN_ECT_0 : ecn;
}

SEC("lwt_xmit")
int podroute_encap(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct iphdr *inner = data;
	__u32 zero = 0;

	if ((void *)(inner + 1) > end || inner->version != 4) {
		count(PR_ENCAP_ERROR);
		return BPF_DROP;
	}
	struct pr_settings *s = bpf_map_lookup_elem(&pr_settings, &zero);
	if (!s || !s->local) {
		count(PR_ENCAP_ERROR);
		return BPF_DROP;
	}
	struct pr_lpm_key key = { .prefixlen = 32, .addr = inner->daddr };
	__u32 *node = bpf_map_lookup_elem(&pr_blocks, &key);
	if (!node) {
		// A route whose block the agent has not written yet (it writes
		// the map before the route, so only a foreign route gets here).
		count(PR_ENCAP_NO_NODE);
		return BPF_DROP;
	}

	struct iphdr outer = {
		.version = 4,
		.ihl = 5,
		.tos = outer_tos(inner->tos),
		// tunl0's default `ttl inherit`.
		.ttl = inner->ttl,
		.protocol = IPPROTO_IPIP,
		.saddr = s->local,
		.daddr = *node,
	};
	__u32 len = skb->len + sizeof(outer);
	// A GSO super-packet may exceed 65,535 once the outer header is on;
	// segmentation writes every segment's own length.
	outer.tot_len = bpf_htons(len > 0xffff ? 0xffff : len);
	if (inner->frag_off & bpf_htons(PR_IP_DF)) {
		outer.frag_off = bpf_htons(PR_IP_DF);
	} else {
		// Without DF the outer packet may be fragmented on the way and
		// needs an identification of its own (RFC 791).
		outer.id = (__u16)bpf_get_prandom_u32();
	}

	int gso = skb->gso_size != 0;
	int workaround = gso && s->gso_mode == PR_GSO_IP_THEN_IPIP;
	if (workaround)
		outer.protocol = IPPROTO_IP;
	// The kernel computes the checksum of a header pushed with check 0.
	long err = bpf_lwt_push_encap(skb, BPF_LWT_ENCAP_IP, &outer, sizeof(outer));
	if (err == -PR_EPROTONOSUPPORT && gso) {
		// This kernel takes the other protocol for GSO packets: use it
		// from now on (kept in the pinned map across agent restarts).
		// The header is already pushed, so this packet is lost; TCP
		// sends it again.
		s->gso_mode = workaround ? PR_GSO_IPIP : PR_GSO_IP_THEN_IPIP;
		count(PR_ENCAP_GSO_SWITCHED);
		return BPF_DROP;
	}
	if (err) {
		count(PR_ENCAP_ERROR);
		return BPF_DROP;
	}
	if (workaround) {
		// Protocol 0 → 4 in the 16-bit word it shares with the TTL.
		__u16 old_word = bpf_htons(((__u16)outer.ttl << 8) | IPPROTO_IP);
		__u16 new_word = bpf_htons(((__u16)outer.ttl << 8) | IPPROTO_IPIP);
		__u8 proto = IPPROTO_IPIP;
		if (bpf_skb_store_bytes(skb, offsetof(struct iphdr, protocol), &proto, 1, 0) ||
		    bpf_l3_csum_replace(skb, offsetof(struct iphdr, check), old_word, new_word, 2)) {
			count(PR_ENCAP_ERROR);
			return BPF_DROP;
		}
	}
	count(PR_ENCAPSULATED);
	return BPF_LWT_REROUTE;
}

SEC("tc")
int podroute_decap(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct iphdr *outer = data + sizeof(struct ethhdr);
	__u32 zero = 0;

	if (skb->protocol != bpf_htons(ETH_P_IP) || (void *)(outer + 1) > end ||
	    outer->protocol != IPPROTO_IPIP)
		return TC_ACT_OK;
	struct pr_settings *s = bpf_map_lookup_elem(&pr_settings, &zero);
	// IPIP for another host (this node routes it on) is not ours to open.
	if (!s || outer->daddr != s->local)
		return TC_ACT_OK;
	if (!bpf_map_lookup_elem(&pr_nodes, &outer->saddr)) {
		count(PR_DECAP_NOT_NODE);
		return TC_ACT_SHOT;
	}
	if (outer->frag_off & bpf_htons(PR_IP_MF | PR_IP_OFFSET)) {
		// A fragment cannot be opened before reassembly, and after it
		// nothing here sees the packet: counted, left to the stack.
		count(PR_DECAP_FRAGMENT);
		return TC_ACT_OK;
	}
	__u32 outer_len = outer->ihl * 4;
	struct iphdr *inner = (void *)outer + outer_len;
	if (outer_len < sizeof(struct iphdr) || outer_len > 60 || (void *)(inner + 1) > end ||
	    inner->version != 4) {
		count(PR_DECAP_ERROR);
		return TC_ACT_SHOT;
	}
	// FIXED_GSO: merged packets keep the segment size they arrived with,
	// or they would grow past the pod MTU. No BPF_F_ADJ_ROOM_DECAP_L3_IPV4:
	// Linux 6.3 added it for decapsulation that changes the IP version
	// (it only sets skb->protocol, already IPv4 here), and 6.1 (Debian
	// 12's stock kernel) refuses the unknown flag with -EINVAL, which
	// dropped every packet there (ipip/tests/vm.rs).
	if (bpf_skb_adjust_room(skb, -(__s32)outer_len, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_FIXED_GSO)) {
		count(PR_DECAP_ERROR);
		return TC_ACT_SHOT;
	}
	count(PR_DECAPSULATED);
	return TC_ACT_OK;
}

// No GPL-only helper is used, so the project's own licence.
char LICENSE[] SEC("license") = "Apache-2.0";
