/*
 * How many SHA-1 streams the SHA extensions need interleaved on this CPU: S independent states
 * each hash 32 blocks, block by block in turn, and the probe prints TSC cycles per block (best
 * of 2,000). One stream waits on the instructions' latency; on AMD EPYC (Zen 3) S = 1 took
 * 90.3, S = 2, 3, 4 took 53.2, 51.3, 50.3 (`CbcSha1X16`'s SHA-NI code takes one block of each
 * lane in turn for this). The round-function selectors are fixed per group of rounds, not
 * SHA-1's: a timing probe, its digests are not SHA-1's. Not part of the build:
 *
 *   for s in 1 2 3 4; do gcc -O2 -msha -msse4.1 -DS=$s -o /tmp/sha_ni_streams \
 *     bench/probes/sha_ni_streams.c && taskset -c 1 /tmp/sha_ni_streams; done
 */
#include <immintrin.h>
#include <stdio.h>
#include <stdint.h>
#include <x86intrin.h>
// Compress NB blocks for S independent streams interleaved, SHA-NI.
#define ROUNDS4(abcd, e0, e1, msg, k) e1 = abcd; abcd = _mm_sha1rnds4_epu32(abcd, e0, k);
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
#ifndef S
#define S 1
#endif
static uint8_t buf[S][64*32];
int main(){
  __m128i a[S], e[S];
  for (int s=0;s<S;s++){a[s]=_mm_set1_epi32(s);e[s]=_mm_set1_epi32(s+1);}
  uint64_t best=~0ull;
  for (int rep=0; rep<2000; rep++){
    uint64_t t0=__rdtsc();
    for (int b=0;b<32;b++) for (int s=0;s<S;s++) step(&a[s],&e[s],buf[s]+64*b);
    uint64_t t=__rdtsc()-t0; if(t<best)best=t;
  }
  int x=0; for(int s=0;s<S;s++) x+=_mm_cvtsi128_si32(a[s]);
  printf("S=%d cycles/block %.1f (%d)\n", S, (double)best/(32.0*S), x&1);
}
