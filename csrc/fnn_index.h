/*
 * fnn_index.h -- reading integer data (indices, labels, argmax positions)
 * that the caller may change while a kernel runs (private to csrc/).
 *
 * The kernels run with the GIL released, so another Python thread can write
 * the caller's array meanwhile. A value checked and then read again could be
 * in range at the check and out of range at the use: each value is read
 * exactly once into a local (an atomic load the compiler cannot repeat), and
 * that local is checked where it is used.
 */
#ifndef FNN_INDEX_H
#define FNN_INDEX_H

#include <stdint.h>

static inline int64_t fnn_read_index(const int64_t *p)
{
#if defined(__GNUC__) || defined(__clang__)
    return __atomic_load_n(p, __ATOMIC_RELAXED);
#else
    return *(const volatile int64_t *)p;
#endif
}

#endif /* FNN_INDEX_H */
