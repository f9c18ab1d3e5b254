/*
 * What intel-ipsec-mb's AES-128-GCM costs per packet in a loop shaped like the bench's capture
 * replay: copy a burst of 32 frames from a ring of 132 stored ones into buffers taken in turn
 * from a pool (as net_pcap's infinite_rx does), then encrypt each in place with the library's
 * direct function (as our engine does for GCM). Prints the mean TSC cycles per packet of the
 * copy and of the encryption. A probe for bench/THROUGHPUT.md, not part of the build:
 *
 *   gcc -O2 -o /tmp/gcm_replay bench/probes/gcm_replay.c -lIPSec_MB
 *   /tmp/gcm_replay [payload bytes, 1408] [pool buffers, 512] [frame offset, 0]
 *
 * The frame offset moves every frame by that many bytes: 2 puts the encrypted bytes, which
 * follow the 14-byte Ethernet header, on a 16-byte boundary.
 */
#define LINUX
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <x86intrin.h>
#include <intel-ipsec-mb.h>

#define BUF 2176
#define HEADROOM 128
#define STORED 132
#define BURST 32

int main(int argc, char **argv)
{
        size_t len = argc > 1 ? (size_t)atoi(argv[1]) : 1408;
        int pool_n = argc > 2 ? atoi(argv[2]) : 512;
        int off = argc > 3 ? atoi(argv[3]) : 0;
        IMB_MGR *m = alloc_mb_mgr(0);
        IMB_ARCH arch;
        static struct gcm_key_data k __attribute__((aligned(64)));
        uint8_t key[16] = { 1, 2, 3 }, iv[12] = { 0 }, aad[8] = { 0 }, tag[16];
        struct gcm_context_data ctx;
        uint8_t *src, *pool;
        uint64_t enc = 0, copy = 0;
        int s = 0, next = 0, bursts = 200000, warm = 1000;

        if (m == NULL || len + 64 > BUF - 2 * HEADROOM || pool_n < BURST || off < 0 || off > 64)
                return 1;
        init_mb_mgr_auto(m, &arch);
        IMB_AES128_GCM_PRE(m, key, &k);
        src = aligned_alloc(64, STORED * BUF);
        pool = aligned_alloc(64, (size_t)pool_n * BUF);
        memset(src, 7, STORED * BUF);
        memset(pool, 1, (size_t)pool_n * BUF);
        for (int it = 0; it < bursts; it++) {
                uint8_t *b[BURST];
                uint64_t t0 = __rdtsc(), t1, t2;

                /* The frame (Ethernet, IPv4, the payload) lands at the headroom. */
                for (int i = 0; i < BURST; i++, s++) {
                        b[i] = pool + (size_t)((next + i) % pool_n) * BUF + HEADROOM + off;
                        memcpy(b[i], src + (size_t)(s % STORED) * BUF + HEADROOM, len + 42);
                }
                next = (next + BURST) % pool_n;
                t1 = __rdtsc();
                for (int i = 0; i < BURST; i++)
                        IMB_AES128_GCM_ENC(m, &k, &ctx, b[i] + 14, b[i] + 14, len, iv, aad, 8, tag, 16);
                t2 = __rdtsc();
                if (it >= warm) {
                        copy += t1 - t0;
                        enc += t2 - t1;
                }
        }
        printf("arch %d, %zu bytes, pool %d, offset %d: copy %.0f, encrypt %.0f cycles per packet (mean)\n", (int)arch, len,
               pool_n, off, copy / (double)BURST / (bursts - warm), enc / (double)BURST / (bursts - warm));
        free_mb_mgr(m);
        return 0;
}
