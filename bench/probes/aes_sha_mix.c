/*
 * Whether AES rounds and SHA-1 rounds overlap on this CPU's vector pipes: sixteen AES-128
 * chains of 128-bit AES-NI (legacy SSE encoding) and sixteen SHA-1 streams with the SHA
 * extensions, run alone (mode 1: SHA-1, mode 2: AES) and interleaved (mode 3), in TSC cycles per
 * lane-block (one SHA-1 block; a quarter of a sixteen-block AES step). On AMD EPYC (Zen 3):
 * 52.3, 47.3 and 103.0: no overlap, so `CbcSha1X16` hashes after the cipher. Timing only (the
 * round-function selectors are fixed, the data zero). A variant whose AES chains were 256-bit
 * VAES vectors (built with -mavx2 -mvaes) ran its SHA-1 loop at about 9,600 cycles per block,
 * with or without the AES work: the SHA instructions have only their legacy SSE encoding. Not
 * part of the build:
 *
 *   gcc -O2 -msha -msse4.1 -maes -o /tmp/aes_sha_mix bench/probes/aes_sha_mix.c
 *   for m in 1 2 3; do taskset -c 1 /tmp/aes_sha_mix $m; done
 */
#include <immintrin.h>
#include <stdio.h>
#include <stdint.h>
#include <x86intrin.h>
#include <stdlib.h>
static inline void step(__m128i *abcd, __m128i *e, const uint8_t *p) {
  const __m128i mask = _mm_set_epi64x(0x0001020304050607ULL, 0x08090a0b0c0d0e0fULL);
  __m128i a0 = *abcd, e0 = *e, e1, m0, m1, m2, m3;
  __m128i sa = a0, se = e0;
  m0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i*)(p)), mask);
  m1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i*)(p+16)), mask);
  m2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i*)(p+32)), mask);
  m3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i*)(p+48)), mask);
  e0 = _mm_add_epi32(e0, m0); e1 = a0; a0 = _mm_sha1rnds4_epu32(a0, e0, 0);
  e1 = _mm_sha1nexte_epu32(e1, m1); e0 = a0; a0 = _mm_sha1rnds4_epu32(a0, e1, 0); m0 = _mm_sha1msg1_epu32(m0, m1);
  e0 = _mm_sha1nexte_epu32(e0, m2); e1 = a0; a0 = _mm_sha1rnds4_epu32(a0, e0, 0); m1 = _mm_sha1msg1_epu32(m1, m2); m0 = _mm_xor_si128(m0, m2);
  for (int i = 0; i < 4; i++) {
    e1 = _mm_sha1nexte_epu32(e1, m3); e0 = a0; m0 = _mm_sha1msg2_epu32(m0, m3); a0 = _mm_sha1rnds4_epu32(a0, e1, 1); m2 = _mm_sha1msg1_epu32(m2, m3); m1 = _mm_xor_si128(m1, m3);
    e0 = _mm_sha1nexte_epu32(e0, m0); e1 = a0; m1 = _mm_sha1msg2_epu32(m1, m0); a0 = _mm_sha1rnds4_epu32(a0, e0, 1); m3 = _mm_sha1msg1_epu32(m3, m0); m2 = _mm_xor_si128(m2, m0);
    e1 = _mm_sha1nexte_epu32(e1, m1); e0 = a0; m2 = _mm_sha1msg2_epu32(m2, m1); a0 = _mm_sha1rnds4_epu32(a0, e1, 2); m0 = _mm_sha1msg1_epu32(m0, m1); m3 = _mm_xor_si128(m3, m1);
    e0 = _mm_sha1nexte_epu32(e0, m2); e1 = a0; m3 = _mm_sha1msg2_epu32(m3, m2); a0 = _mm_sha1rnds4_epu32(a0, e0, 2); m1 = _mm_sha1msg1_epu32(m1, m2); m0 = _mm_xor_si128(m0, m2);
  }
  e1 = _mm_sha1nexte_epu32(e1, m3); e0 = a0; a0 = _mm_sha1rnds4_epu32(a0, e1, 3);
  e0 = _mm_sha1nexte_epu32(e0, se); a0 = _mm_add_epi32(a0, sa);
  *abcd = a0; *e = e0;
}
static uint8_t buf[16][64*32];
static uint8_t abuf[16][16*128];
static __m128i rk[11], chain[16];
static inline void aes_step(int j) {
  __m128i x[16];
  for (int g=0; g<16; g++) { __m128i p = _mm_loadu_si128((void*)&abuf[g][16*j]); x[g] = _mm_xor_si128(_mm_xor_si128(p, chain[g]), rk[0]); }
  for (int r=1;r<10;r++) for (int g=0; g<16; g++) x[g] = _mm_aesenc_si128(x[g], rk[r]);
  for (int g=0; g<16; g++) { x[g] = _mm_aesenclast_si128(x[g], rk[10]); chain[g]=x[g]; _mm_storeu_si128((void*)&abuf[g][16*j], x[g]); }
}
int main(int argc, char**argv){
  int mode = atoi(argv[1]);
  __m128i a[16], e[16];
  for (int s=0;s<16;s++){a[s]=_mm_set1_epi32(s);e[s]=_mm_set1_epi32(s+1);}
  for (int r=0;r<11;r++) rk[r]=_mm_set1_epi32(r*77);
  for (int g=0;g<16;g++) chain[g]=_mm_set1_epi32(g);
  uint64_t best=~0ull;
  for (int rep=0; rep<3000; rep++){
    uint64_t t0=__rdtsc();
    for (int b=0;b<24;b++) {
      for (int s=0;s<16;s++) {
        if (mode & 1) step(&a[s],&e[s],buf[s]+64*b);
        if ((mode & 2) && (s & 3) == 3) aes_step((b*4 + s/4) & 63);
      }
    }
    uint64_t t=__rdtsc()-t0; if(t<best)best=t;
  }
  int x=0; for(int s=0;s<16;s++) x+=_mm_cvtsi128_si32(a[s]); x+= _mm_cvtsi128_si32(chain[0]);
  printf("mode %d: cycles per lane-block %.1f (%d)\n", mode, (double)best/(24.0*16), x&1);
}
