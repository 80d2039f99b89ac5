# Optimizer steps and the reductions / element-wise helpers around them
# (csrc/optim.c). Every array is float32 and C-contiguous; an optimizer's
# state and gradient arrays have exactly the parameter array's shape (the
# model passes its flat 1-D buffers). Uses the argument checks in act.pxi.
# Scalars go to C as the doubles they arrive as (C converts them to the
# kernel's parameter type), never rounded to float here first.


def sgd_update_f32(cnp.ndarray p not None, object velocity, cnp.ndarray g not None, double lr,
                   double momentum, bint nesterov, double decay, int nthreads):
    """Keras SGD step in place: p -= decay p, then v = momentum v - lr g;
    p += v (nesterov: p += momentum v - lr g); plain p -= lr g when velocity
    is None or momentum is 0 (velocity then untouched)."""
    cdef float *pp = <float *>data_of(p, _K_F32, "sgd_update_f32", "p", True)
    cdef const float *gp = <const float *>_k_like(g, p, "sgd_update_f32", "g", "p")
    cdef float *vp = NULL
    cdef int status
    if velocity is not None:
        vp = <float *>_k_like(velocity, p, "sgd_update_f32", "velocity", "p", True)
    with nogil:
        status = fnn_sgd_update_f32(pp, vp, gp, cnp.PyArray_SIZE(p), lr,
                                    momentum, nesterov, decay, nthreads)
    check_status(status)


def adam_update_f32(cnp.ndarray p not None, cnp.ndarray m not None, cnp.ndarray v not None,
                    object vhat, cnp.ndarray g not None, double lr_t, double beta1,
                    double beta2, double eps, double decay, int nthreads):
    """Keras Adam step in place (lr_t carries the bias corrections); vhat,
    when given, turns on amsgrad."""
    cdef float *pp = <float *>data_of(p, _K_F32, "adam_update_f32", "p", True)
    cdef float *mp = <float *>_k_like(m, p, "adam_update_f32", "m", "p", True)
    cdef float *vp = <float *>_k_like(v, p, "adam_update_f32", "v", "p", True)
    cdef const float *gp = <const float *>_k_like(g, p, "adam_update_f32", "g", "p")
    cdef float *hp = NULL
    cdef int status
    if vhat is not None:
        hp = <float *>_k_like(vhat, p, "adam_update_f32", "vhat", "p", True)
    with nogil:
        status = fnn_adam_update_f32(pp, mp, vp, hp, gp, cnp.PyArray_SIZE(p), lr_t,
                                     beta1, beta2, eps, decay,
                                     nthreads)
    check_status(status)


def rmsprop_update_f32(cnp.ndarray p not None, cnp.ndarray ms not None, object mg, object mom,
                       cnp.ndarray g not None, double lr, double rho, double momentum,
                       double eps, double decay, int nthreads):
    """Keras RMSprop step in place; mg (centered) and mom (momentum > 0) may be None."""
    cdef float *pp = <float *>data_of(p, _K_F32, "rmsprop_update_f32", "p", True)
    cdef float *sp = <float *>_k_like(ms, p, "rmsprop_update_f32", "ms", "p", True)
    cdef const float *gp = <const float *>_k_like(g, p, "rmsprop_update_f32", "g", "p")
    cdef float *ap = NULL
    cdef float *up = NULL
    cdef int status
    if mg is not None:
        ap = <float *>_k_like(mg, p, "rmsprop_update_f32", "mg", "p", True)
    if mom is not None:
        up = <float *>_k_like(mom, p, "rmsprop_update_f32", "mom", "p", True)
    with nogil:
        status = fnn_rmsprop_update_f32(pp, sp, ap, up, gp, cnp.PyArray_SIZE(p), lr,
                                        rho, momentum, eps, decay,
                                        nthreads)
    check_status(status)


def adagrad_update_f32(cnp.ndarray p not None, cnp.ndarray acc not None, cnp.ndarray g not None,
                       double lr, double eps, double decay, int nthreads):
    """Keras Adagrad step in place: acc += g^2; p -= lr g / sqrt(acc + eps)."""
    cdef float *pp = <float *>data_of(p, _K_F32, "adagrad_update_f32", "p", True)
    cdef float *ap = <float *>_k_like(acc, p, "adagrad_update_f32", "acc", "p", True)
    cdef const float *gp = <const float *>_k_like(g, p, "adagrad_update_f32", "g", "p")
    cdef int status
    with nogil:
        status = fnn_adagrad_update_f32(pp, ap, gp, cnp.PyArray_SIZE(p), lr, eps,
                                        decay, nthreads)
    check_status(status)



def nadam_update_f32(cnp.ndarray p not None, cnp.ndarray m not None, cnp.ndarray v not None,
                     cnp.ndarray g not None, double lr, double beta1, double beta2,
                     double coef_m, double coef_g, double v_correction, double eps,
                     double decay, int nthreads):
    """Keras Nadam step in place; coef_m, coef_g and v_correction carry the
    momentum schedule and the bias correction (fnn_nadam_update_f32)."""
    cdef float *pp = <float *>data_of(p, _K_F32, "nadam_update_f32", "p", True)
    cdef float *mp = <float *>_k_like(m, p, "nadam_update_f32", "m", "p", True)
    cdef float *vp = <float *>_k_like(v, p, "nadam_update_f32", "v", "p", True)
    cdef const float *gp = <const float *>_k_like(g, p, "nadam_update_f32", "g", "p")
    cdef int status
    with nogil:
        status = fnn_nadam_update_f32(pp, mp, vp, gp, cnp.PyArray_SIZE(p), lr, beta1, beta2,
                                      coef_m, coef_g, v_correction, eps, decay, nthreads)
    check_status(status)


def adamax_update_f32(cnp.ndarray p not None, cnp.ndarray m not None, cnp.ndarray u not None,
                      cnp.ndarray g not None, double lr, double beta1, double beta2,
                      double m_correction, double eps, double decay, int nthreads):
    """Keras Adamax step in place: m += (g - m)(1 - beta1); u = max(beta2 u, |g|);
    p -= lr m / (m_correction (u + eps))."""
    cdef float *pp = <float *>data_of(p, _K_F32, "adamax_update_f32", "p", True)
    cdef float *mp = <float *>_k_like(m, p, "adamax_update_f32", "m", "p", True)
    cdef float *up = <float *>_k_like(u, p, "adamax_update_f32", "u", "p", True)
    cdef const float *gp = <const float *>_k_like(g, p, "adamax_update_f32", "g", "p")
    cdef int status
    with nogil:
        status = fnn_adamax_update_f32(pp, mp, up, gp, cnp.PyArray_SIZE(p), lr, beta1, beta2,
                                       m_correction, eps, decay, nthreads)
    check_status(status)


def lion_update_f32(cnp.ndarray p not None, cnp.ndarray m not None, cnp.ndarray g not None,
                    double lr, double beta1, double beta2, double decay, int nthreads):
    """Keras Lion step in place: p -= lr sign(beta1 m + (1 - beta1) g);
    m = beta2 m + (1 - beta2) g."""
    cdef float *pp = <float *>data_of(p, _K_F32, "lion_update_f32", "p", True)
    cdef float *mp = <float *>_k_like(m, p, "lion_update_f32", "m", "p", True)
    cdef const float *gp = <const float *>_k_like(g, p, "lion_update_f32", "g", "p")
    cdef int status
    with nogil:
        status = fnn_lion_update_f32(pp, mp, gp, cnp.PyArray_SIZE(p), lr, beta1, beta2, decay,
                                     nthreads)
    check_status(status)


def sum_squares_f32(cnp.ndarray x not None, int nthreads):
    """sum(x**2) accumulated in double over fixed chunks: the same bits for any nthreads."""
    cdef const float *xp = <const float *>data_of(x, _K_F32, "sum_squares_f32", "x")
    cdef double out = 0.0
    cdef int status
    with nogil:
        status = fnn_sum_squares_f32(&out, xp, cnp.PyArray_SIZE(x), nthreads)
    check_status(status)
    return out


def scale_f32(cnp.ndarray x not None, double s, int nthreads):
    """x *= s in place."""
    cdef float *xp = <float *>data_of(x, _K_F32, "scale_f32", "x", True)
    cdef int status
    with nogil:
        status = fnn_scale_f32(xp, cnp.PyArray_SIZE(x), s, nthreads)
    check_status(status)


def clip_f32(cnp.ndarray x not None, double lo, double hi, int nthreads):
    """Clip x to [lo, hi] in place (NaN stays NaN; lo > hi gives hi, as np.clip)."""
    cdef float *xp = <float *>data_of(x, _K_F32, "clip_f32", "x", True)
    cdef int status
    with nogil:
        status = fnn_clip_f32(xp, cnp.PyArray_SIZE(x), lo, hi, nthreads)
    check_status(status)


def all_finite_f32(cnp.ndarray x not None, int nthreads):
    """True when x holds no NaN or inf."""
    cdef const float *xp = <const float *>data_of(x, _K_F32, "all_finite_f32", "x")
    cdef int ok = 1
    cdef int status
    with nogil:
        status = fnn_all_finite_f32(&ok, xp, cnp.PyArray_SIZE(x), nthreads)
    check_status(status)
    return ok != 0
