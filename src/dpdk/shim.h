/* The DPDK surface that ipsecgw binds: the headers bindgen reads, and the C shim (shim.c) over
 * DPDK's static-inline functions and thread-local variables, which bindgen cannot bind. */
#ifndef GW_DPDK_SHIM_H
#define GW_DPDK_SHIM_H

#include <errno.h>
#include <stdint.h>

#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mbuf_pool_ops.h>
#include <rte_mempool.h>
#include <rte_ring.h>

/* rte_errno of the calling thread (a per-lcore variable). */
int gw_errno(void);
/* rte_lcore_id(): LCORE_ID_ANY on a thread EAL does not know. */
unsigned int gw_lcore_id(void);
/* rte_rdtsc(). */
uint64_t gw_rdtsc(void);

uint16_t gw_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t gw_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);

/* rte_pktmbuf_pool_create(), except that in IOVA-as-VA mode objects may cross page
 * boundaries (see shim.c); NULL with rte_errno set on failure. */
struct rte_mempool *gw_pktmbuf_pool_create(const char *name, unsigned int n, unsigned int cache,
					   uint16_t data_room, int socket);
/* 1 when the pool's objects may cross page boundaries (as gw_pktmbuf_pool_create allows). */
int gw_mempool_packed(const struct rte_mempool *mp);
/* 1 in IOVA-as-VA mode. */
int gw_iova_is_va(void);
struct rte_mbuf *gw_pktmbuf_alloc(struct rte_mempool *mp);
/* 0, or a negative errno with nothing allocated. */
int gw_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int n);
void gw_pktmbuf_free(struct rte_mbuf *m);
/* The data pointer after the change, NULL (and no change) without room. */
char *gw_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *gw_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *gw_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
/* 0, or -1 (and no change) if the packet is shorter. */
int gw_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
char *gw_pktmbuf_mtod(struct rte_mbuf *m);
uint16_t gw_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t gw_pktmbuf_tailroom(const struct rte_mbuf *m);
uint32_t gw_pktmbuf_pkt_len(const struct rte_mbuf *m);
uint16_t gw_pktmbuf_data_len(const struct rte_mbuf *m);
/* The RSS hash the device wrote (valid when ol_flags has RTE_MBUF_F_RX_RSS_HASH). */
uint32_t gw_mbuf_rss_hash(const struct rte_mbuf *m);

#endif
