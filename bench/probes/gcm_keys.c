/*
 * What intel-ipsec-mb's AES-128-GCM costs per packet when each packet of a burst has its own
 * key, as in the bench's 10,000-policy row (traffic spread over the SAs in turn), against one
 * key for every packet. No gateway work at all: only the library's direct function on
 * 52-byte payloads (a 64-byte frame's inner packet with its ESP trailer) in buffers that stay
 * in cache, and the key blocks (struct gcm_key_data, as IMB_AES128_GCM_PRE lays them out) in
 * one array. A lower bound of what N SAs cost any gateway built on this library here. A probe
 * for bench/THROUGHPUT.md, not part of the build:
 *
 *   gcc -O2 -o /tmp/gcm_keys bench/probes/gcm_keys.c -lIPSec_MB
 *   /tmp/gcm_keys [keys, 10000] [lines prefetched per key, 0] [order, seq] [bursts, 200000]
 *
 * The packets take the keys in turn: in the array's order (`seq`, the bench's traffic over
 * policies laid out one after the other, which the hardware's stream prefetcher follows) or in
 * a fixed random permutation of it (`random`, SAs whose state lies anywhere).
 * With a prefetch count P > 0 the burst's 32 key blocks have their first P cache lines
 * prefetched before the burst is encrypted (what a gateway can do once it knows the burst's
 * SAs). Prints the median of 9 runs of the TSC cycles per packet (prefetch loop included).
 */
#define LINUX
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <x86intrin.h>
#include <intel-ipsec-mb.h>

#define BURST 32
#define BUFS 512
#define BUF 2048
#define LEN 52
#define RUNS 9

static int cmp(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
        int n = argc > 1 ? atoi(argv[1]) : 10000;
        int pf = argc > 2 ? atoi(argv[2]) : 0;
        int random = argc > 3 && strcmp(argv[3], "random") == 0;
        int bursts = argc > 4 ? atoi(argv[4]) : 200000;
        int *order;
        IMB_MGR *m = alloc_mb_mgr(0);
        IMB_ARCH arch;
        struct gcm_key_data *keys;
        uint8_t *bufs, iv[12] = { 0 }, aad[8] = { 0 }, tag[16];
        struct gcm_context_data ctx;
        double runs[RUNS];
        size_t line = 64, kb = sizeof(struct gcm_key_data);
        int next = 0, buf = 0;

        if (m == NULL || n < 1 || pf < 0 || (size_t)pf * line > kb || bursts < 1)
                return 1;
        init_mb_mgr_auto(m, &arch);
        keys = aligned_alloc(64, (size_t)n * kb);
        bufs = aligned_alloc(64, (size_t)BUFS * BUF);
        order = malloc((size_t)n * sizeof(*order));
        if (keys == NULL || bufs == NULL || order == NULL)
                return 1;
        for (int i = 0; i < n; i++)
                order[i] = i;
        srand(1);
        for (int i = n - 1; random && i > 0; i--) {
                int j = rand() % (i + 1), t = order[i];
                order[i] = order[j];
                order[j] = t;
        }
        for (int i = 0; i < n; i++) {
                uint8_t key[16] = { (uint8_t)i, (uint8_t)(i >> 8), 3 };
                IMB_AES128_GCM_PRE(m, key, &keys[i]);
        }
        memset(bufs, 1, (size_t)BUFS * BUF);
        for (int r = 0; r < RUNS; r++) {
                uint64_t total = 0;
                for (int it = 0; it < bursts; it++) {
                        struct gcm_key_data *k[BURST];
                        uint8_t *b[BURST];
                        uint64_t t0;

                        for (int i = 0; i < BURST; i++) {
                                k[i] = &keys[order[next]];
                                next = next + 1 == n ? 0 : next + 1;
                                b[i] = bufs + (size_t)buf * BUF + 128;
                                buf = buf + 1 == BUFS ? 0 : buf + 1;
                        }
                        t0 = __rdtsc();
                        for (int i = 0; i < BURST; i++)
                                for (int l = 0; l < pf; l++)
                                        _mm_prefetch((const char *)k[i] + l * line, _MM_HINT_T0);
                        for (int i = 0; i < BURST; i++)
                                IMB_AES128_GCM_ENC(m, k[i], &ctx, b[i], b[i], LEN, iv, aad, 8, tag, 16);
                        total += __rdtsc() - t0;
                }
                runs[r] = total / (double)BURST / bursts;
        }
        qsort(runs, RUNS, sizeof(runs[0]), cmp);
        printf("arch %d, key block %zu bytes, %d keys (%.1f MiB), %s order, %d lines prefetched: %.1f cycles per packet "
               "(median of %d; %.1f to %.1f)\n",
               (int)arch, kb, n, n * (double)kb / (1 << 20), random ? "random" : "seq", pf, runs[RUNS / 2], RUNS, runs[0], runs[RUNS - 1]);
        free_mb_mgr(m);
        return 0;
}
