/*
 * fnn_omp.h -- the only place that calls the OpenMP runtime.
 *
 * Without OpenMP (a compiler lacking it) these serial stand-ins keep every
 * kernel correct on one thread; `#pragma omp` lines are then ignored.
 */
#ifndef FNN_OMP_H
#define FNN_OMP_H

#ifdef _OPENMP
#include <omp.h>
static inline int fnn_omp_thread_num(void) { return omp_get_thread_num(); }
static inline int fnn_omp_num_threads(void) { return omp_get_num_threads(); }
static inline int fnn_omp_num_procs(void) { return omp_get_num_procs(); }
#else
static inline int fnn_omp_thread_num(void) { return 0; }
static inline int fnn_omp_num_threads(void) { return 1; }
static inline int fnn_omp_num_procs(void) { return 1; }
#endif

/* Threads worth using for `work` units (FLOPs or elements) when each thread
 * should get at least `grain` of them: small problems stay on one thread,
 * where a parallel region would cost more than it saves. */
static inline int fnn_threads_for(double work, double grain, int nthreads)
{
    int useful;
    if (nthreads <= 1 || work < 2.0 * grain) {
        return 1;
    }
    useful = (int)(work / grain);
    return useful < nthreads ? useful : nthreads;
}

#endif /* FNN_OMP_H */
