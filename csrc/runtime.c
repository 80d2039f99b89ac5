/*
 * runtime.c -- status strings, what the build knows about OpenMP, the team
 * bookkeeping (largest team seen, whether OpenMP's thread pool started, and
 * whether this process was forked after it did) and the oversubscription
 * guard, all declared in fnn_omp.h.
 */
#define _POSIX_C_SOURCE 200809L

#include <time.h>
#ifdef _OPENMP
#include <pthread.h>
#endif

#include "fastnn.h"
#include "fnn_omp.h"

/* A master waiting more than this long at a team's barriers, and for more
 * than a quarter of the region, saw a descheduled thread (a healthy wake-up
 * and the last work unit take tens of microseconds). */
#define TEAM_WAIT_LIMIT_NS 100000
/* The back-off starts at 20 ms of single-threaded kernels and doubles on each
 * report that follows a retry, up to 1 s: 20, 40, ..., 640 ms, then 1 s. */
#define BACKOFF_MIN_NS 20000000LL
#define BACKOFF_MAX_NS 1000000000LL

/* A region starting this long after the previous team's end found OpenMP's
 * threads asleep: its wait is their wake-up, not another process. */
#define IDLE_GAP_NS 2000000LL

/* Shared by every calling thread; relaxed atomics suffice: a stale value only
 * means one more or one fewer threaded call. */
static int guard_enabled = 1;
static int64_t backoff_until_ns;
static int64_t backoff_len_ns = BACKOFF_MIN_NS;
static int64_t last_team_end_ns;

/* Team bookkeeping: the largest team since fnn_max_team_reset (tests ask it
 * whether threads really ran); whether a team of 2+ threads ever ran here or
 * in the process this one was forked from (OpenMP's pool then exists); and
 * whether this process was forked after that, when the pool's threads did not
 * come along. Forked memory carries the first two flags into the child. */
static int max_team;
static int pool_started;
static int pool_lost;

const char *fnn_strerror(int status)
{
    switch (status) {
    case FNN_OK:
        return "success";
    case FNN_ERR_ARG:
        return "invalid size, stride or option passed to a kernel";
    case FNN_ERR_NOMEM:
        return "out of memory allocating kernel scratch space";
    case FNN_ERR_ISA:
        return "the requested instruction set is not supported by this CPU";
    case FNN_ERR_LABEL:
        return "a class index is out of range";
    default:
        return "unknown error";
    }
}

int fnn_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int fnn_num_procs(void)
{
    return fnn_omp_num_procs();
}

#ifdef _OPENMP
/* Runs in the child, inside fork(), before any Python code. GNU libgomp keeps
 * its pool's bookkeeping across fork but not its threads, so the child's
 * next team of 2+ threads waits forever for them (checked with gcc 12: a
 * parent's team of 2, then a child's team of 2 or 3 hangs; of 1 it runs). */
static void note_fork_in_child(void)
{
    if (__atomic_load_n(&pool_started, __ATOMIC_RELAXED)) {
        __atomic_store_n(&pool_lost, 1, __ATOMIC_RELAXED);
    }
}
#endif

void fnn_runtime_init(void)
{
#ifdef _OPENMP
    static int registered;
    if (!__atomic_exchange_n(&registered, 1, __ATOMIC_RELAXED)) {
        pthread_atfork(NULL, NULL, note_fork_in_child);
    }
#endif
}

void fnn_team_seen(int size)
{
    int seen = __atomic_load_n(&max_team, __ATOMIC_RELAXED);
    while (size > seen
           && !__atomic_compare_exchange_n(&max_team, &seen, size, 0, __ATOMIC_RELAXED,
                                           __ATOMIC_RELAXED)) {
    }
    if (size > 1 && !__atomic_load_n(&pool_started, __ATOMIC_RELAXED)) {
        __atomic_store_n(&pool_started, 1, __ATOMIC_RELAXED);
    }
}

int fnn_max_team_seen(void)
{
    return __atomic_load_n(&max_team, __ATOMIC_RELAXED);
}

void fnn_max_team_reset(void)
{
    __atomic_store_n(&max_team, 0, __ATOMIC_RELAXED);
}

int fnn_pool_started(void)
{
    return __atomic_load_n(&pool_started, __ATOMIC_RELAXED);
}

int fnn_pool_lost(void)
{
    return __atomic_load_n(&pool_lost, __ATOMIC_RELAXED);
}

int64_t fnn_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void fnn_set_oversubscription_guard(int enabled)
{
    fnn_oversubscription_reset();
    __atomic_store_n(&guard_enabled, enabled != 0, __ATOMIC_RELAXED);
}

int fnn_oversubscription_guard(void)
{
    return __atomic_load_n(&guard_enabled, __ATOMIC_RELAXED);
}

int fnn_oversubscribed(void)
{
    int64_t until = __atomic_load_n(&backoff_until_ns, __ATOMIC_RELAXED);
    return until != 0 && __atomic_load_n(&guard_enabled, __ATOMIC_RELAXED)
           && fnn_now_ns() < until;
}

void fnn_oversubscription_reset(void)
{
    __atomic_store_n(&backoff_until_ns, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&backoff_len_ns, BACKOFF_MIN_NS, __ATOMIC_RELAXED);
}

int64_t fnn_oversubscription_backoff_ns(void)
{
    return __atomic_load_n(&backoff_len_ns, __ATOMIC_RELAXED);
}

void fnn_report_team_wait(int64_t wait_ns, int64_t wall_ns)
{
    int64_t now, previous_end, len;
    if (!__atomic_load_n(&guard_enabled, __ATOMIC_RELAXED)) {
        return;    /* the policy is off: keep no state that would apply when it is back on */
    }
    now = fnn_now_ns();
    previous_end = __atomic_exchange_n(&last_team_end_ns, now, __ATOMIC_RELAXED);
    len = __atomic_load_n(&backoff_len_ns, __ATOMIC_RELAXED);
    if (now - wall_ns - previous_end > IDLE_GAP_NS) {
        return;
    }
    if (wait_ns > TEAM_WAIT_LIMIT_NS && 4 * wait_ns > wall_ns) {
        __atomic_store_n(&backoff_until_ns, now + len, __ATOMIC_RELAXED);
        __atomic_store_n(&backoff_len_ns, 2 * len < BACKOFF_MAX_NS ? 2 * len : BACKOFF_MAX_NS,
                         __ATOMIC_RELAXED);
    }
    else if (len != BACKOFF_MIN_NS) {
        __atomic_store_n(&backoff_len_ns, BACKOFF_MIN_NS, __ATOMIC_RELAXED);
    }
}

void fnn_team_note_done(int64_t *first_done, int64_t own_wait_ns)
{
    /* An inner-barrier wait counts as if this thread had finished that much earlier. */
    const int64_t mine = fnn_now_ns() - own_wait_ns;
    int64_t seen = __atomic_load_n(first_done, __ATOMIC_RELAXED);
    while (mine < seen
           && !__atomic_compare_exchange_n(first_done, &seen, mine, 0, __ATOMIC_RELAXED,
                                           __ATOMIC_RELAXED)) {
    }
}

void fnn_team_report(int64_t start, int64_t first_done)
{
    const int64_t end = fnn_now_ns();
    fnn_report_team_wait(end - first_done, end - start);
}
