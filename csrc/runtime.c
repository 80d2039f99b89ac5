/*
 * runtime.c -- status strings, what the build knows about OpenMP, and the
 * oversubscription guard declared in fnn_omp.h.
 */
#define _POSIX_C_SOURCE 200809L

#include <time.h>

#include "fastnn.h"
#include "fnn_omp.h"

/* A master waiting more than this long at a team's barriers, and for more
 * than a quarter of the region, saw a descheduled thread (a healthy wake-up
 * and the last work unit take tens of microseconds). */
#define TEAM_WAIT_LIMIT_NS 100000
#define BACKOFF_MIN_NS 20000000LL      /* 20 ms of single-threaded kernels */
#define BACKOFF_MAX_NS 1000000000LL    /* at most 1 s between tries */

/* A region starting this long after the previous team's end found OpenMP's
 * threads asleep: its wait is their wake-up, not another process. */
#define IDLE_GAP_NS 2000000LL

/* Shared by every calling thread; relaxed atomics suffice: a stale value only
 * means one more or one fewer threaded call. */
static int64_t backoff_until_ns;
static int64_t backoff_len_ns = BACKOFF_MIN_NS;
static int64_t last_team_end_ns;

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

int64_t fnn_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int fnn_oversubscribed(void)
{
    int64_t until = __atomic_load_n(&backoff_until_ns, __ATOMIC_RELAXED);
    return until != 0 && fnn_now_ns() < until;
}

void fnn_oversubscription_reset(void)
{
    __atomic_store_n(&backoff_until_ns, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&backoff_len_ns, BACKOFF_MIN_NS, __ATOMIC_RELAXED);
}

void fnn_report_team_wait(int64_t wait_ns, int64_t wall_ns)
{
    const int64_t now = fnn_now_ns();
    const int64_t previous_end = __atomic_exchange_n(&last_team_end_ns, now, __ATOMIC_RELAXED);
    int64_t len = __atomic_load_n(&backoff_len_ns, __ATOMIC_RELAXED);
    if (now - wall_ns - previous_end > IDLE_GAP_NS) {
        return;
    }
    if (wait_ns > TEAM_WAIT_LIMIT_NS && 4 * wait_ns > wall_ns) {
        __atomic_store_n(&backoff_until_ns, now + len, __ATOMIC_RELAXED);
        __atomic_store_n(&backoff_len_ns, len < BACKOFF_MAX_NS ? 2 * len : len,
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
