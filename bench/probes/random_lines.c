/*
 * What a random cache line costs on this machine, by the size of the memory it is drawn from:
 * the floor under the cost of spreading traffic over thousands of SAs, each packet touching
 * its own SA's lines. Two patterns, each over a buffer of N MiB:
 *
 *   chase   one line at a time, each address read from the line before (a pointer chase
 *           through a random cycle of every line): the latency of one miss;
 *   burst   bursts of 32 random lines, all prefetched first, then all read (as a worker
 *           prefetches a burst's SA state before using any): the cost per line when 32 misses
 *           overlap.
 *
 * The burst's line numbers are drawn before the clock starts (stop 34's version drew them in
 * the timed loop, and its 64-bit modulo cost more than the lines: 6.2 cycles a line from a
 * buffer that fits L2). The first row is a 16 KiB buffer, which L1 holds: the loop's own cost,
 * to subtract from the others.
 *
 * Prints TSC cycles per line for each size. A probe for bench/THROUGHPUT.md, not part of the
 * build:
 *
 *   gcc -O2 -o /tmp/random_lines bench/probes/random_lines.c
 *   taskset -c 1 /tmp/random_lines [--thp] [MiB ... ; default 1 2 4 8 16 32 64]
 *
 * --thp asks for transparent huge pages on the buffers (madvise); without it they are kept on
 * 4 KiB pages. Either way the AnonHugePages the process held at the end is printed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <x86intrin.h>

#define LINE 64
#define BURST 32
#define DRAWS (1 << 20)
#define HUGE (2u << 20)

static int thp;

static uint64_t next(uint64_t *s) {
    /* xorshift64: cheap, and not rand()'s 31 bits, which cannot index 64 MiB of lines */
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A buffer of `bytes`, 2 MiB aligned, every page touched. */
static char *lines_of(size_t bytes) {
    char *raw = mmap(NULL, bytes + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    char *buf = (char *)(((uintptr_t)raw + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
    madvise(buf, bytes, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    memset(buf, 1, bytes);
    return buf;
}

/* Cycles per step of a pointer chase through a random cycle of every line. */
static double chase(size_t bytes) {
    size_t n = bytes / LINE;
    char *buf = lines_of(bytes);
    size_t *order = malloc(n * sizeof *order);
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = next(&s) % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < n; i++)
        *(char **)(buf + order[i] * LINE) = buf + order[(i + 1) % n] * LINE;
    char *p = buf + order[0] * LINE;
    long steps = 2000000;
    for (long i = 0; i < steps / 4; i++)
        p = *(char **)p;
    uint64_t t0 = __rdtsc();
    for (long i = 0; i < steps; i++)
        p = *(char **)p;
    uint64_t t1 = __rdtsc();
    if (p == NULL)
        puts("");
    free(order);
    return (double)(t1 - t0) / steps;
}

/* Cycles per line of bursts of 32 random lines, prefetched, then read; the best of 5 passes
 * over the same draws. */
static double burst(size_t bytes, const uint32_t *draw) {
    size_t n = bytes / LINE;
    char *buf = lines_of(bytes);
    static uint32_t at[DRAWS];
    for (size_t i = 0; i < DRAWS; i++)
        at[i] = draw[i] % n;
    uint64_t sum = 0, best = UINT64_MAX;
    for (int pass = 0; pass < 5; pass++) {
        uint64_t t0 = __rdtsc();
        for (size_t b = 0; b < DRAWS; b += BURST) {
            for (int i = 0; i < BURST; i++)
                _mm_prefetch(buf + (size_t)at[b + i] * LINE, _MM_HINT_T0);
            for (int i = 0; i < BURST; i++)
                sum += *(volatile uint64_t *)(buf + (size_t)at[b + i] * LINE);
        }
        uint64_t t = __rdtsc() - t0;
        if (t < best)
            best = t;
    }
    if (sum == 42)
        puts("");
    return (double)best / DRAWS;
}

static void print_thp(void) {
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    char l[256];
    while (f && fgets(l, sizeof l, f))
        if (strstr(l, "AnonHugePages"))
            fputs(l, stdout);
    if (f)
        fclose(f);
}

int main(int argc, char **argv) {
    static const size_t sizes[] = {1, 2, 4, 8, 16, 32, 64};
    int first = 1;
    if (argc > 1 && strcmp(argv[1], "--thp") == 0) {
        thp = 1;
        first = 2;
    }
    static uint32_t draw[DRAWS];
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < DRAWS; i++)
        draw[i] = (uint32_t)next(&s);
    int n = argc > first ? argc - first : (int)(sizeof sizes / sizeof *sizes);
    printf("pages: %s\nMiB   chase cycles/line   burst of 32 prefetched, cycles/line\n", thp ? "THP" : "4 KiB");
    printf("L1    %-19.1f %.2f\n", chase(16384), burst(16384, draw));
    for (int i = 0; i < n; i++) {
        size_t mib = argc > first ? strtoul(argv[i + first], NULL, 10) : sizes[i];
        double c = chase(mib << 20), b = burst(mib << 20, draw);
        printf("%-5zu %-19.1f %.2f\n", mib, c, b);
    }
    print_thp();
    return 0;
}
