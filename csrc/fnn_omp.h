/*
 * fnn_omp.h -- the only place that calls the OpenMP runtime.
 *
 * Without OpenMP (a compiler lacking it) these serial stand-ins keep every
 * kernel correct on one thread; `#pragma omp` lines are then ignored.
 */
#ifndef FNN_OMP_H
#define FNN_OMP_H

#include <stdint.h>

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

/* Oversubscription guard (runtime.c). When another process holds one of our
 * cores, a team member is descheduled for a whole time slice and every
 * barrier waits for it: two threads then run far slower than one. A kernel
 * that sees its master idle at barriers reports it; fastnn then runs kernels
 * on one thread for a while (20 ms, doubling on repeated reports up to 1 s,
 * reset when a team runs well) and tries again. Results do not depend on the
 * thread count, so this changes only speed. It is a policy the user can turn
 * off (fastnn.set_oversubscription_guard); off, kernels never back off. */
void fnn_set_oversubscription_guard(int enabled);   /* also forgets past reports */
int fnn_oversubscription_guard(void);               /* 1 when the policy is on */
int fnn_oversubscribed(void);                       /* 1 while backing off */
void fnn_oversubscription_reset(void);              /* forget past reports */
int64_t fnn_oversubscription_backoff_ns(void);      /* the next back-off's length */
void fnn_report_team_wait(int64_t wait_ns, int64_t wall_ns);
int64_t fnn_now_ns(void);                           /* monotonic clock */
/* How a parallel region measures its wait: start = fnn_now_ns() and
 * first_done = INT64_MAX before it; each thread calls fnn_team_note_done
 * when it runs out of work (own_wait_ns: time it already spent at the
 * region's inner barriers); after it, fnn_team_report(start, first_done).
 * The thread that finished first waited longest for the others -- long when
 * the OS descheduled one of them, whichever it was. */
void fnn_team_note_done(int64_t *first_done, int64_t own_wait_ns);
void fnn_team_report(int64_t start, int64_t first_done);

/* Team bookkeeping (runtime.c). fnn_team_seen(size) records a team that
 * started: the largest size since fnn_max_team_reset (so a test can tell
 * that two threads really ran) and, for size >= 2, that OpenMP's thread pool
 * is live. fnn_pool_lost(): this process was forked after the pool started
 * here or in an ancestor, and GNU libgomp would hang starting a team of 2+
 * (see runtime.c); every kernel then runs on one thread. fnn_runtime_init
 * registers the fork handler that notices it (called once at import). */
void fnn_runtime_init(void);
void fnn_team_seen(int size);
int fnn_max_team_seen(void);
void fnn_max_team_reset(void);
int fnn_pool_started(void);
int fnn_pool_lost(void);

/* Called first thing inside every parallel region: its master records the
 * team's size, once per region (one relaxed load, a store only for a new
 * maximum), outside every hot loop. */
static inline void fnn_note_team(void)
{
    if (fnn_omp_thread_num() == 0) {
        fnn_team_seen(fnn_omp_num_threads());
    }
}

/* The one thread-count rule. Threads worth using for `work` (FLOPs or
 * elements) cut into `units` independent pieces: each thread should get at
 * least `grain` of the work and at least one unit, and there are at most
 * `nthreads`. Small problems stay on one thread, where a parallel region
 * would cost more than it saves; so does everything while the machine is
 * oversubscribed, and in a child forked after OpenMP's pool started. */
static inline int fnn_threads_for(double work, double grain, int64_t units, int nthreads)
{
    int useful;
    if (nthreads <= 1 || units <= 1 || work < 2.0 * grain || fnn_oversubscribed()
        || fnn_pool_lost()) {
        return 1;
    }
    useful = (int)(work / grain);
    if (useful > nthreads) {
        useful = nthreads;
    }
    return (int64_t)useful < units ? useful : (int)units;
}

/* Units [first, last) of a kernel's work, on one thread. `slot` is in
 * [0, nthreads) and no two calls running at once share it: per-thread scratch
 * is indexed by it. Returns FNN_OK (0) or an error status. */
typedef int (*fnn_unit_fn)(void *ctx, int64_t first, int64_t last, int slot);

/* The one parallel loop. Runs fn over units [0, units) cut into `nthreads`
 * contiguous ranges, range c = [units*c/nt, units*(c+1)/nt): the ranges
 * depend on `units` and `nthreads` alone (not on the team OpenMP grants, not
 * on timing), so a kernel whose units own their outputs -- or keep per-unit
 * partials that the caller adds in unit order -- gives the same bits on any
 * thread count. nthreads <= 1 (or a single unit): one call, no parallel region.
 * The region records its team (fnn_note_team) and reports how long its first
 * finisher waited to the oversubscription guard. Returns FNN_OK, or the first
 * error status a range returned (the other ranges still run). */
static inline int fnn_run_units(int64_t units, int nthreads, fnn_unit_fn fn, void *ctx)
{
    int status = 0;
    int64_t start, first_done = INT64_MAX;
    const int nt = (int64_t)nthreads < units ? nthreads : (int)units;

    if (units <= 0) {
        return 0;
    }
    if (nt <= 1) {
        return fn(ctx, 0, units, 0);
    }
    start = fnn_now_ns();
    #pragma omp parallel num_threads(nt)
    {
        fnn_note_team();
        const int got = fnn_omp_num_threads();
        for (int c = fnn_omp_thread_num(); c < nt; c += got) {
            int st = fn(ctx, units * c / nt, units * (c + 1) / nt, c);
            int none = 0;
            if (st != 0) {
                __atomic_compare_exchange_n(&status, &none, st, 0, __ATOMIC_RELAXED,
                                            __ATOMIC_RELAXED);
            }
        }
        fnn_team_note_done(&first_done, 0);
    }
    fnn_team_report(start, first_done);
    return status;
}

#endif /* FNN_OMP_H */
