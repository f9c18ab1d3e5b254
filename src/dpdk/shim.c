/* Out-of-line copies of the DPDK static-inline functions and thread-local variables that
 * ipsecgw calls (see shim.h); compiled by build.rs with the full `pkg-config --cflags libdpdk`. */
#include "shim.h"

int gw_errno(void) { return rte_errno; }
unsigned int gw_lcore_id(void) { return rte_lcore_id(); }
uint64_t gw_rdtsc(void) { return rte_rdtsc(); }

uint16_t gw_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_rx_burst(port, queue, pkts, n);
}

uint16_t gw_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_tx_burst(port, queue, pkts, n);
}

/* rte_pktmbuf_pool_create_by_ops() with one flag more. Without hugepages EAL's pages are 4 KiB,
 * and a pool whose objects must be IOVA-contiguous keeps each object inside one page: every
 * mbuf then starts a page, at the same offset in it as every other. The sixteen lanes of
 * intel-ipsec-mb's AVX-512 code then read and write sixteen packets whose lines all fall in
 * the same L1 sets (eight ways), and a burst's mbuf headers all share one set: AES-CBC +
 * HMAC-SHA1 of 1,420-byte packets took 1,300 cycles per packet in such mbufs against 1,040 in
 * a copy of them packed 2,304 bytes apart. When IOVAs are virtual addresses, consecutive
 * virtual addresses are consecutive IOVAs, so an object that crosses a page is still
 * contiguous for DMA and the pool can pack them (with the mempool's usual spread). */
struct rte_mempool *gw_pktmbuf_pool_create(const char *name, unsigned int n, unsigned int cache,
					   uint16_t data_room, int socket)
{
	struct rte_pktmbuf_pool_private priv = { .mbuf_data_room_size = data_room };
	unsigned int flags = gw_iova_is_va() ? RTE_MEMPOOL_F_NO_IOVA_CONTIG : 0;
	struct rte_mempool *mp = rte_mempool_create_empty(name, n, sizeof(struct rte_mbuf) + data_room, cache,
							  sizeof(priv), socket, flags);
	int ret;

	if (mp == NULL)
		return NULL;
	ret = rte_mempool_set_ops_byname(mp, rte_mbuf_best_mempool_ops(), NULL);
	if (ret == 0) {
		rte_pktmbuf_pool_init(mp, &priv);
		ret = rte_mempool_populate_default(mp);
	}
	if (ret < 0) {
		rte_mempool_free(mp);
		rte_errno = -ret;
		return NULL;
	}
	rte_mempool_obj_iter(mp, rte_pktmbuf_init, NULL);
	return mp;
}

int gw_mempool_packed(const struct rte_mempool *mp) { return (mp->flags & RTE_MEMPOOL_F_NO_IOVA_CONTIG) != 0; }
int gw_iova_is_va(void) { return rte_eal_iova_mode() == RTE_IOVA_VA; }

struct rte_mbuf *gw_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }

int gw_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int n)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, n);
}

void gw_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }
char *gw_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_prepend(m, len); }
char *gw_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_append(m, len); }
char *gw_pktmbuf_adj(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_adj(m, len); }
int gw_pktmbuf_trim(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_trim(m, len); }
char *gw_pktmbuf_mtod(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, char *); }
uint16_t gw_pktmbuf_headroom(const struct rte_mbuf *m) { return rte_pktmbuf_headroom(m); }
uint16_t gw_pktmbuf_tailroom(const struct rte_mbuf *m) { return rte_pktmbuf_tailroom(m); }
uint32_t gw_pktmbuf_pkt_len(const struct rte_mbuf *m) { return rte_pktmbuf_pkt_len(m); }
uint16_t gw_pktmbuf_data_len(const struct rte_mbuf *m) { return rte_pktmbuf_data_len(m); }
uint32_t gw_mbuf_rss_hash(const struct rte_mbuf *m) { return m->hash.rss; }
