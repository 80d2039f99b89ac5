/*
 * cpu.c -- which instruction sets this CPU and OS can run, and the one
 * kernel table that the rest of csrc/ calls through.
 *
 * An ISA is supported when the CPU has the instructions (__builtin_cpu_supports)
 * AND the OS saves the registers they use across context switches (XGETBV:
 * XCR0 bits 1-2 for YMM, bits 5-7 as well for the AVX-512 opmask and ZMM
 * state). A CPU flag alone is not enough: a hypervisor or kernel that does
 * not enable the state makes those instructions fault.
 *
 * The table is filled portable-first, then the chosen ISA overrides what it
 * has. One table is built per ISA (once, at first selection) and the current
 * one is published with an atomic pointer store, so a thread running a GEMM
 * while another re-selects reads either the old table or the new one, never
 * a mix. Selection normally happens once, at import.
 *
 * Non-x86-64 or non-GCC-compatible builds compile too: only "generic".
 */
#include "fastnn.h"
#include "gemm_internal.h"
#include "vexp.h"

#if defined(FNN_HAVE_X86_KERNELS) && (defined(__GNUC__) || defined(__clang__)) \
    && (defined(__x86_64__) || defined(__i386__))
#define FNN_X86_DETECT 1
#include <cpuid.h>
#endif

static const char *const isa_names[FNN_ISA_COUNT] = {"generic", "avx2", "avx512"};

#ifdef FNN_X86_DETECT
/* XCR0, or 0 when the OS has not enabled XSAVE (then XGETBV would fault). */
static uint64_t read_xcr0(void)
{
    unsigned int eax, ebx, ecx, edx, lo, hi;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) {
        return 0;
    }
    if (!(ecx & (1u << 27))) { /* OSXSAVE */
        return 0;
    }
    /* Spelled as bytes: older assemblers lack the mnemonic. */
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static int detect(int isa)
{
    uint64_t xcr0;
    __builtin_cpu_init();
    xcr0 = read_xcr0();
    if (isa == FNN_ISA_AVX2) {
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
               && (xcr0 & 0x6) == 0x6;
    }
    if (isa == FNN_ISA_AVX512) {
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
               && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")
               && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
               && (xcr0 & 0xE6) == 0xE6;
    }
    return 0;
}
#endif

int fnn_isa_supported(int isa)
{
    if (isa == FNN_ISA_GENERIC) {
        return 1;
    }
    if (isa < 0 || isa >= FNN_ISA_COUNT) {
        return 0;
    }
#ifdef FNN_X86_DETECT
    return detect(isa);
#else
    return 0;
#endif
}

int fnn_isa_best(void)
{
    int isa;
    for (isa = FNN_ISA_COUNT - 1; isa > FNN_ISA_GENERIC; isa--) {
        if (fnn_isa_supported(isa)) {
            return isa;
        }
    }
    return FNN_ISA_GENERIC;
}

const char *fnn_isa_name(int isa)
{
    if (isa < 0 || isa >= FNN_ISA_COUNT) {
        return "unknown";
    }
    return isa_names[isa];
}

/* ---- the kernel table --------------------------------------------------- */

static void fill_generic(fnn_kernel_table *t)
{
    t->isa = FNN_ISA_GENERIC;
    t->gemm_f32.ukr = fnn_gemm_ukr_f32_generic_4x16;
    t->gemm_f32.pack_bt = fnn_gemm_packbt_f32_generic;
    t->gemm_f32.mr = FNN_GEMM_GENERIC_MR;
    t->gemm_f32.nr = FNN_GEMM_GENERIC_NR;
    t->gemm_f32.mc = 128;
    t->gemm_f32.kc = 256;
    t->gemm_f32.nc = 1024;
    t->act_f32.forward = fnn_act_forward_loop_f32_generic;
    t->act_f32.backward = fnn_act_backward_loop_f32_generic;
    t->act_f32.tile = fnn_act_tile_loop_f32_generic;
    t->vexp.f32 = fnn_vexp_f32_generic;
    t->vexp.f64 = fnn_vexp_f64_generic;
    t->layernorm = FNN_LN_KERNEL(generic);
    t->att_f32 = FNN_ATT_KERNEL(f32, generic);
    t->att_f64 = FNN_ATT_KERNEL(f64, generic);
}

#ifdef FNN_X86_DETECT
static void fill_avx2(fnn_kernel_table *t)
{
    t->isa = FNN_ISA_AVX2;
    t->gemm_f32.ukr = fnn_gemm_ukr_f32_avx2_6x16;
    t->gemm_f32.pack_bt = fnn_gemm_packbt_f32_avx2;
    t->gemm_f32.mr = FNN_GEMM_AVX2_MR;
    t->gemm_f32.nr = FNN_GEMM_AVX2_NR;
    /* As for AVX-512 (below), a little more conservative on KC for the
     * smaller L2 of AVX2-only CPUs. */
    t->gemm_f32.mc = 48;
    t->gemm_f32.kc = 512;
    t->gemm_f32.nc = 2048;
    t->act_f32.forward = fnn_act_forward_loop_f32_avx2;
    t->act_f32.backward = fnn_act_backward_loop_f32_avx2;
    t->act_f32.tile = fnn_act_tile_loop_f32_avx2;
    t->vexp.f32 = fnn_vexp_f32_avx2;
    t->vexp.f64 = fnn_vexp_f64_avx2;
    t->layernorm = FNN_LN_KERNEL(avx2);
    t->att_f32 = FNN_ATT_KERNEL(f32, avx2);
    t->att_f64 = FNN_ATT_KERNEL(f64, avx2);
}

/* Whether the CPU says it is Intel's (CPUID leaf 0: "GenuineIntel"). */
static int is_intel(void)
{
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) {
        return 0;
    }
    return ebx == 0x756e6547u && edx == 0x49656e69u && ecx == 0x6c65746eu;
}

static void fill_avx512(fnn_kernel_table *t)
{
    t->isa = FNN_ISA_AVX512;
    t->gemm_f32.ukr = fnn_gemm_ukr_f32_avx512_12x32;
    t->gemm_f32.pack_bt = fnn_gemm_packbt_f32_avx2; /* AVX-512 implies AVX2 */
    t->gemm_f32.mr = FNN_GEMM_AVX512_MR;
    t->gemm_f32.nr = FNN_GEMM_AVX512_NR;
    /* Measured on Zen 5 (48 KiB L1, 1 MiB L2 per core): a long K block
     * matters most, since every K block reads and writes all of C again
     * (KC 256 -> 1024 took square 2048 from 170 to 230 GFLOP/s per core).
     * The micro-panels (12x1024 of A, 48 KiB; 1024x32 of B, 128 KiB) then
     * stream from L2, which keeps up with the FMAs; a short MC keeps the A
     * block (24x1024, 96 KiB) in L2 next to them. */
    t->gemm_f32.mc = 24;
    t->gemm_f32.kc = 1024;
    t->gemm_f32.nc = 2048;
    if (is_intel()) {
        /* Sapphire Rapids (48 KiB L1, 2 MiB L2 per core) cannot stream both
         * micro-panels from L2 at the FMA rate: there the B micro-panel must
         * sit in L1 (256x32, 32 KiB) and serve the A block's (48x256, 48 KiB,
         * in L2) tiles. One core: square 1024 95 -> 130 GFLOP/s, the W6
         * training step 7% faster. */
        t->gemm_f32.mc = 48;
        t->gemm_f32.kc = 256;
    }
    t->act_f32.forward = fnn_act_forward_loop_f32_avx512;
    t->act_f32.backward = fnn_act_backward_loop_f32_avx512;
    t->act_f32.tile = fnn_act_tile_loop_f32_avx512;
    t->vexp.f32 = fnn_vexp_f32_avx512;
    t->vexp.f64 = fnn_vexp_f64_avx512;
    t->layernorm = FNN_LN_KERNEL(avx512);
    t->att_f32 = FNN_ATT_KERNEL(f32, avx512);
    t->att_f64 = FNN_ATT_KERNEL(f64, avx512);
}
#endif

static fnn_kernel_table tables[FNN_ISA_COUNT];
static int tables_built; /* written once, at the first selection */
static const fnn_kernel_table *current; /* accessed atomically */

static void build_tables(void)
{
    int isa;
    for (isa = 0; isa < FNN_ISA_COUNT; isa++) {
        fill_generic(&tables[isa]); /* portable first ... */
    }
#ifdef FNN_X86_DETECT
    fill_avx2(&tables[FNN_ISA_AVX2]); /* ... then what each ISA overrides */
    fill_avx512(&tables[FNN_ISA_AVX512]);
#endif
}

int fnn_isa_select(int isa)
{
    if (isa < 0 || isa >= FNN_ISA_COUNT || !fnn_isa_supported(isa)) {
        return FNN_ERR_ISA;
    }
    /* The first call comes from the module's import, under the GIL, before
     * any kernel can run: building here is not racy in practice. */
    if (!__atomic_load_n(&tables_built, __ATOMIC_ACQUIRE)) {
        build_tables();
        __atomic_store_n(&tables_built, 1, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&current, &tables[isa], __ATOMIC_RELEASE);
    return FNN_OK;
}

int fnn_isa_current(void)
{
    return fnn_kernels()->isa;
}

void fnn_gemm_blocking(int64_t out[5])
{
    const fnn_gemm_kernel_f32 *g = &fnn_kernels()->gemm_f32;
    out[0] = g->mr;
    out[1] = g->nr;
    out[2] = g->mc;
    out[3] = g->kc;
    out[4] = g->nc;
}

const fnn_kernel_table *fnn_kernels(void)
{
    const fnn_kernel_table *t = __atomic_load_n(&current, __ATOMIC_ACQUIRE);
    if (t == NULL) {
        fnn_isa_select(FNN_ISA_GENERIC);
        t = __atomic_load_n(&current, __ATOMIC_ACQUIRE);
    }
    return t;
}
