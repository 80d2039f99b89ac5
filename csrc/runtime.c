/*
 * runtime.c -- status strings and what the build knows about OpenMP.
 */
#include "fastnn.h"
#include "fnn_omp.h"

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
