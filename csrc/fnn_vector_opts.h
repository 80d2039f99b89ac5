/*
 * fnn_vector_opts.h -- the one compile option the vectorised float loops
 * need, stated once. Include it FIRST (before any other header) in a file
 * whose loops use vexp.h / vact.h: it applies to every function defined
 * after it, and GCC does not inline across functions compiled with
 * different options, so the whole file must get it.
 *
 * GCC keeps FP exception flags exact by default (-ftrapping-math), which
 * stops it from if-converting the selects inside the element-wise loops, so
 * they would run one element at a time. Nothing in fastnn reads those flags,
 * and values do not depend on the option. Clang's default is already this.
 * No include guard: each file that includes it wants the pragma.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
