# cython: language_level=3
"""fastnn's compiled kernels: thin wrappers over csrc/ (declared in cfastnn.pxd).

Each wrapper checks dtype, shape and contiguity (naming the shapes), takes
raw pointers, releases the GIL around exactly one kernel call, and turns a
C status into a Python exception. No math happens here. One kernel family per
included file; they are compiled into this one module so that there is one
kernel table and one copy of the C state.
"""
include "runtime.pxi"
include "overlap.pxi"
include "gemm.pxi"
include "act.pxi"
include "dense.pxi"
include "conv.pxi"
include "loss.pxi"
include "optim.pxi"
include "regularize.pxi"
include "norm.pxi"
include "pool.pxi"
include "embedding.pxi"
include "rnn.pxi"
include "elementwise.pxi"
include "reduce.pxi"
include "concat.pxi"
include "batch_matmul.pxi"
include "layernorm.pxi"
include "attention.pxi"
