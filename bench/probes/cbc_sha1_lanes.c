/*
 * Which of intel-ipsec-mb's managers seals AES-128-CBC + HMAC-SHA-1-96 faster on this CPU, in
 * bursts shaped like our engine's: 32 ESP-shaped jobs (8-byte header, 16-byte IV, payload,
 * ICV; the HMAC covers header, IV and ciphertext) submitted one after the other, then flushed.
 * The SSE manager hashes with the SHA extensions one packet at a time and ciphers in four
 * lanes; the AVX2 manager (crypto-perf's and ipsec-secgw's) runs eight lanes of both. Prints
 * the median and lowest TSC cycles per job of 9 runs of 2,000 bursts for each, then of a split
 * burst: the ciphers alone on the AVX2 manager's eight lanes, flushed, then the HMACs alone on
 * the SSE manager. A probe for bench/THROUGHPUT.md, not part of the build:
 *
 *   gcc -O2 -o /tmp/cbc_sha1_lanes bench/probes/cbc_sha1_lanes.c -lIPSec_MB
 *   /tmp/cbc_sha1_lanes [payload bytes, 1408] [pool buffers, 32]
 *
 * With more pool buffers than 32, each burst takes the next 32 in turn, so the data comes from
 * further down the memory hierarchy (4,096 buffers: 8 MiB).
 */
#define LINUX
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <x86intrin.h>
#include <intel-ipsec-mb.h>

#define BURST 32
#define BUF 2048
#define RUNS 9
#define BURSTS 2000

static DECLARE_ALIGNED(uint8_t enc_keys[16 * 15], 64);
static DECLARE_ALIGNED(uint8_t dec_keys[16 * 15], 64);
static DECLARE_ALIGNED(uint8_t ipad[64], 64);
static DECLARE_ALIGNED(uint8_t opad[64], 64);
static uint8_t tags[BURST][12];
static const uint8_t iv[16];

static void check(const IMB_JOB *j)
{
        if (j->status != IMB_STATUS_COMPLETED) {
                fprintf(stderr, "job failed: status %d\n", j->status);
                exit(1);
        }
}

/* Submits the burst's jobs to `m`, ciphering when `cipher`, hashing when `hash`, then flushes. */
static void part_burst(IMB_MGR *m, uint8_t *bufs, size_t len, int cipher, int hash)
{
        IMB_JOB *j;

        for (int i = 0; i < BURST; i++) {
                uint8_t *b = bufs + (size_t)i * BUF;

                j = IMB_GET_NEXT_JOB(m);
                j->cipher_direction = IMB_DIR_ENCRYPT;
                j->chain_order = IMB_ORDER_CIPHER_HASH;
                j->src = b;
                j->dst = b + 24;
                j->cipher_start_src_offset_in_bytes = 24;
                j->msg_len_to_cipher_in_bytes = len;
                j->iv = iv;
                j->iv_len_in_bytes = 16;
                j->enc_keys = enc_keys;
                j->dec_keys = dec_keys;
                j->key_len_in_bytes = 16;
                j->cipher_mode = cipher ? IMB_CIPHER_CBC : IMB_CIPHER_NULL;
                j->hash_alg = hash ? IMB_AUTH_HMAC_SHA_1 : IMB_AUTH_NULL;
                j->hash_start_src_offset_in_bytes = 0;
                j->msg_len_to_hash_in_bytes = hash ? 24 + len : 0;
                j->auth_tag_output = hash ? tags[i] : NULL;
                j->auth_tag_output_len_in_bytes = hash ? 12 : 0;
                j->u.HMAC._hashed_auth_key_xor_ipad = ipad;
                j->u.HMAC._hashed_auth_key_xor_opad = opad;
                for (j = IMB_SUBMIT_JOB(m); j != NULL; j = IMB_GET_COMPLETED_JOB(m))
                        check(j);
        }
        while ((j = IMB_FLUSH_JOB(m)) != NULL)
                check(j);
}

static IMB_MGR *avx2, *sse;

static void seal_avx2(uint8_t *bufs, size_t len) { part_burst(avx2, bufs, len, 1, 1); }
static void seal_sse(uint8_t *bufs, size_t len) { part_burst(sse, bufs, len, 1, 1); }
static void seal_split(uint8_t *bufs, size_t len)
{
        part_burst(avx2, bufs, len, 1, 0);
        part_burst(sse, bufs, len, 0, 1);
}

static int cmp(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return (x > y) - (x < y);
}

static void measure(const char *name, void (*seal_burst)(uint8_t *, size_t), uint8_t *pool, int pool_n, size_t len)
{
        uint64_t c[RUNS];

        for (int r = 0; r < RUNS; r++) {
                uint64_t t0 = __rdtsc();

                for (int k = 0; k < BURSTS; k++)
                        seal_burst(pool + (size_t)((k * BURST) % pool_n) * BUF, len);
                c[r] = (__rdtsc() - t0) / (BURSTS * BURST);
        }
        qsort(c, RUNS, sizeof(c[0]), cmp);
        printf("%5zu bytes, %-32s median %5llu cycles/job (lowest %llu)\n", len, name,
               (unsigned long long)c[RUNS / 2], (unsigned long long)c[0]);
}

int main(int argc, char **argv)
{
        size_t len = argc > 1 ? (size_t)atoi(argv[1]) : 1408;
        int pool_n = argc > 2 ? atoi(argv[2]) : BURST;
        uint8_t key[16] = { 1 }, block[64];
        uint8_t *pool;

        avx2 = alloc_mb_mgr(0);
        sse = alloc_mb_mgr(0);

        if (len == 0 || len % 16 != 0 || len + 24 + 12 > BUF || pool_n < BURST || pool_n % BURST != 0) {
                fprintf(stderr, "payload: whole AES blocks up to %d bytes; pool: a multiple of %d\n", BUF - 36, BURST);
                return 2;
        }
        pool = aligned_alloc(64, (size_t)pool_n * BUF);
        if (avx2 == NULL || sse == NULL || pool == NULL)
                return 1;
        memset(pool, 0x5a, (size_t)pool_n * BUF);
        init_mb_mgr_avx2(avx2);
        init_mb_mgr_sse(sse);
        IMB_AES_KEYEXP_128(avx2, key, enc_keys, dec_keys);
        memset(block, 0x36, sizeof(block));
        IMB_SHA1_ONE_BLOCK(avx2, block, ipad);
        memset(block, 0x5c, sizeof(block));
        IMB_SHA1_ONE_BLOCK(avx2, block, opad);
        measure("AVX2 manager (eight lanes)", seal_avx2, pool, pool_n, len);
        measure("SSE manager (SHA extensions)", seal_sse, pool, pool_n, len);
        measure("split: CBC on AVX2, HMAC on SSE", seal_split, pool, pool_n, len);
        free(pool);
        free_mb_mgr(avx2);
        free_mb_mgr(sse);
        return 0;
}
