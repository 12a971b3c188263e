/* CRC-32C with the SSE 4.2 crc32 instruction, chosen at run time.
 *
 * The function is compiled for SSE 4.2 by attribute, not by a global -msse4.2, so the
 * extension still loads on a CPU without it: _kernels.pyx asks ks_crc32c_hw_available()
 * once and falls back to its slicing-by-8 tables. One dependency chain of 8-byte steps
 * (3-cycle latency each) runs at several GB/s, a few times the table version.
 */
#ifndef KAFSCALE_CRC32C_HW_H
#define KAFSCALE_CRC32C_HW_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

__attribute__((target("sse4.2")))
static uint32_t ks_crc32c_hw(uint32_t crc, const unsigned char *p, size_t n)
{
    uint64_t c = crc ^ 0xFFFFFFFFu;
    while (n > 0 && ((uintptr_t)p & 7) != 0) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
        n--;
    }
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        n -= 8;
    }
    while (n > 0) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
        n--;
    }
    return (uint32_t)c ^ 0xFFFFFFFFu;
}

static int ks_crc32c_hw_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2");
}

#else

static uint32_t ks_crc32c_hw(uint32_t crc, const unsigned char *p, size_t n)
{
    (void)p;
    (void)n;
    return crc;
}

static int ks_crc32c_hw_available(void)
{
    return 0;
}

#endif
#endif
