/*
 * fnn_alloc.h -- 64-byte aligned kernel scratch (private to csrc/).
 *
 * C11's aligned_alloc requires the size to be a multiple of the alignment
 * (glibc forgives it, AddressSanitizer and other C libraries do not): the
 * size is rounded up here, so callers ask for what they need. Free with free().
 */
#ifndef FNN_ALLOC_H
#define FNN_ALLOC_H

#include <stdlib.h>

#define FNN_ALIGN_BYTES 64

static inline void *fnn_aligned_alloc(size_t bytes)
{
    const size_t rounded = (bytes + FNN_ALIGN_BYTES - 1) / FNN_ALIGN_BYTES * FNN_ALIGN_BYTES;
    return aligned_alloc(FNN_ALIGN_BYTES, rounded > 0 ? rounded : FNN_ALIGN_BYTES);
}

#endif /* FNN_ALLOC_H */
