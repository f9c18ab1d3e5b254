/*
 * What a random cache line costs on this machine, by the size of the memory it is drawn from:
 * the floor under the cost of spreading traffic over thousands of SAs, each packet touching
 * its own SA's lines. Two patterns, each over a buffer of N MiB (4 KiB pages):
 *
 *   chase   one line at a time, each address read from the line before (a pointer chase
 *           through a random cycle of every line): the latency of one miss;
 *   burst   bursts of 32 random lines, all prefetched first, then all read (as a worker
 *           prefetches a burst's SA state before using any): the cost per line when 32 misses
 *           overlap.
 *
 * Prints TSC cycles per line for each size. A probe for bench/THROUGHPUT.md, not part of the
 * build:
 *
 *   gcc -O2 -o /tmp/random_lines bench/probes/random_lines.c
 *   taskset -c 1 /tmp/random_lines [MiB ... ; default 1 2 3 4 8 16 32 64]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <x86intrin.h>

#define LINE 64
#define BURST 32

static uint64_t next(uint64_t *s) {
    /* xorshift64: cheap, and not rand()'s 31 bits, which cannot index 64 MiB of lines */
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static char *lines_of(size_t bytes) {
    char *buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    return buf;
}

/* Cycles per step of a pointer chase through a random cycle of every line. */
static double chase(size_t mib) {
    size_t bytes = mib << 20, n = bytes / LINE;
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
    long steps = 4000000;
    for (long i = 0; i < steps / 4; i++)
        p = *(char **)p;
    uint64_t t0 = __rdtsc();
    for (long i = 0; i < steps; i++)
        p = *(char **)p;
    uint64_t t1 = __rdtsc();
    if (p == NULL)
        puts("");
    free(order);
    munmap(buf, bytes);
    return (double)(t1 - t0) / steps;
}

/* Cycles per line of bursts of 32 random lines, prefetched, then read. */
static double burst(size_t mib) {
    size_t bytes = mib << 20, n = bytes / LINE;
    char *buf = lines_of(bytes);
    for (size_t i = 0; i < bytes; i += 4096)
        buf[i] = 1;
    uint64_t s = 0x9e3779b97f4a7c15ull, sum = 0;
    long bursts = 200000;
    size_t at[BURST];
    uint64_t t0 = __rdtsc();
    for (long b = 0; b < bursts; b++) {
        for (int i = 0; i < BURST; i++) {
            at[i] = (next(&s) % n) * LINE;
            _mm_prefetch(buf + at[i], _MM_HINT_T0);
        }
        for (int i = 0; i < BURST; i++)
            sum += *(volatile uint64_t *)(buf + at[i]);
    }
    uint64_t t1 = __rdtsc();
    if (sum == 42)
        puts("");
    munmap(buf, bytes);
    return (double)(t1 - t0) / (bursts * BURST);
}

int main(int argc, char **argv) {
    static const size_t sizes[] = {1, 2, 3, 4, 8, 16, 32, 64};
    int n = argc > 1 ? argc - 1 : (int)(sizeof sizes / sizeof *sizes);
    printf("MiB   chase cycles/line   burst of 32 prefetched, cycles/line\n");
    for (int i = 0; i < n; i++) {
        size_t mib = argc > 1 ? strtoul(argv[i + 1], NULL, 10) : sizes[i];
        double c = chase(mib), b = burst(mib);
        printf("%-5zu %-19.1f %.1f\n", mib, c, b);
    }
    return 0;
}
