/*
 * Where a software prefetch puts its line on this CPU, and whether a run of prefetches issued
 * back to back all arrive: the premise of the worker's prefetching (dataplane/src/prefetch.rs
 * sends SA state to L2 with PREFETCHT1, on the finding that Zen 4 keeps T1 out of L1).
 *
 * Each trial puts N lines (one per 12.3 KiB, so that no two share a page or a hardware
 * prefetch stream) out of the caches: flushed to memory, or with FROM_L3=1 read and then
 * pushed out of L2 by a 4 MiB sweep, so that they sit in L3. It issues one kind of prefetch for
 * each (in groups of GROUP lines, waiting GAP TSC cycles after each group; GAP 0: all back to
 * back), waits 20,000 cycles for them to land, then reads the lines in a random pointer chase.
 * The chase's cycles per line tell where the lines were: the "load" row (each line read before
 * the wait) is an L1 hit; the "L2" row (each line read, then 256 KiB of other lines) an L2
 * hit; the "none" row (nothing issued) a miss to memory, or with FROM_L3=1 an L3 hit. A
 * prefetch row near "load" put its lines in L1, near "L2" in L2; near "none", its prefetches
 * brought the lines no nearer. Median of 401 trials.
 *
 * A probe for bench/THROUGHPUT.md, not part of the build:
 *
 *   gcc -O2 -DN=64 -DGAP=400 -DGROUP=8 [-DFROM_L3=1] -o /tmp/prefetch_levels \
 *       bench/probes/prefetch_levels.c
 *   taskset -c 1 /tmp/prefetch_levels
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <x86intrin.h>

#ifndef N
#define N 64
#endif
#ifndef GAP
#define GAP 0
#endif
#ifndef GROUP
#define GROUP 8
#endif
#ifndef FROM_L3
#define FROM_L3 0
#endif
#define STRIDE (4096 * 3 + 64 * 5)
#define TRIALS 401

static void spin(uint64_t cycles) {
    uint64_t t = __rdtsc();
    while (__rdtsc() - t < cycles) {
    }
}

static uint64_t chase(char **start, int n) {
    char **p = start;
    uint64_t t0 = __rdtsc();
    for (int i = 0; i < n; i++) p = (char **)*p;
    uint64_t t1 = __rdtsc();
    if (!p) puts("unreachable");
    return t1 - t0;
}

static int by_value(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(void) {
    char *buf = aligned_alloc(4096, (size_t)N * STRIDE + 4096);
    char *lines[N];
    int order[N];
    for (int i = 0; i < N; i++) {
        lines[i] = buf + (size_t)i * STRIDE;
        order[i] = i;
    }
    srand(1);
    for (int i = N - 1; i > 0; i--) {
        int j = rand() % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int i = 0; i < N; i++) *(char **)lines[order[i]] = lines[order[(i + 1) % N]];

    static const char *names[] = {"none", "T0", "T1", "T2", "NTA", "load", "L2"};
    static char sweep[256 * 1024];
    static char far[4 * 1024 * 1024];
    printf("N=%d GAP=%d GROUP=%d FROM_L3=%d, TSC cycles per line of the chase\n", N, GAP, GROUP,
           FROM_L3);
    for (int kind = 0; kind < 7; kind++) {
        static uint64_t trial[TRIALS];
        for (int r = 0; r < TRIALS; r++) {
            if (FROM_L3) {
                /* Read, then pushed out of L2 (1 MiB on Zen 4) by a 4 MiB sweep: in L3. */
                for (int i = 0; i < N; i++) (void)*(volatile char *)lines[i];
                for (size_t i = 0; i < sizeof far; i += 64) (void)*(volatile char *)&far[i];
            } else {
                for (int i = 0; i < N; i++) _mm_clflush(lines[i]);
            }
            _mm_mfence();
            for (int i = 0; i < N; i++) {
                char *p = lines[i];
                switch (kind) {
                case 1: _mm_prefetch(p, _MM_HINT_T0); break;
                case 2: _mm_prefetch(p, _MM_HINT_T1); break;
                case 3: _mm_prefetch(p, _MM_HINT_T2); break;
                case 4: _mm_prefetch(p, _MM_HINT_NTA); break;
                case 5:
                case 6: (void)*(volatile char *)p; break;
                }
                if (GAP && i % GROUP == GROUP - 1) spin(GAP);
            }
            if (kind == 6) {
                /* Out of L1 (32 KiB), still in L2: the L2 row. */
                for (size_t i = 0; i < sizeof sweep; i += 64) (void)*(volatile char *)&sweep[i];
            }
            spin(20000);
            trial[r] = chase((char **)lines[order[0]], N);
        }
        qsort(trial, TRIALS, sizeof trial[0], by_value);
        printf("%-5s median %6.1f  best %6.1f\n", names[kind], (double)trial[TRIALS / 2] / N,
               (double)trial[0] / N);
    }
    return 0;
}
