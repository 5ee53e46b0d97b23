// Shared by bias_act.cpp (host wrapper) and bias_act.cu (CUDA kernel): the launch parameters and
// the per-element math, written once so that the CUDA kernel and the CPU loop agree exactly.
//
// Element-wise op on a dense tensor of N elements, channel c = (offset / dim_stride) % dim_size:
//   grad 0: out = clamp(gain * f(x + b[c]))                      (forward)
//   grad 1: out = dy * gain * f'(p) * unclamped                  (first derivative, p = x + b[c])
//   grad 2: out = dy * gain * f''(p) * unclamped                 (second derivative)
// In the derivative modes f', f'' come from the pre-activation p = xref + b[c] for swish and from
// the saved output yref (= clamp(gain * f(p))) for the others; "unclamped" is 0 where the clamp cut
// the output off. Activation ids match `activation_funcs[...].cuda_idx` in bias_act.py.

#pragma once
#include <math.h>
#include <cstdint>

#if defined(__CUDACC__)
#define BA_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define BA_HOST_DEVICE inline
#endif

namespace bias_act_ops {

// Explicit float/double overloads: resolve the same way in host code and in device code.
#define BA_MATH_OVERLOADS(name) \
    BA_HOST_DEVICE float ba_##name(float v) { return ::name##f(v); } \
    BA_HOST_DEVICE double ba_##name(double v) { return ::name(v); }
BA_MATH_OVERLOADS(exp)
BA_MATH_OVERLOADS(expm1)
BA_MATH_OVERLOADS(log1p)
BA_MATH_OVERLOADS(tanh)
BA_MATH_OVERLOADS(fabs)
#undef BA_MATH_OVERLOADS

enum Activation : int { kLinear = 1, kRelu, kLrelu, kTanh, kSigmoid, kElu, kSelu, kSoftplus, kSwish };

struct BiasActParams {
    const void* x;     // grad 0: the input. Unused in the derivative modes.
    const void* b;     // [dim_size] bias, or nullptr.
    const void* xref;  // derivative modes: the forward input (needed by swish), or nullptr.
    const void* yref;  // derivative modes: the forward output (needed by the others), or nullptr.
    const void* dy;    // derivative modes: the incoming gradient.
    void* out;
    int64_t numel;
    int64_t dim_stride;  // Memory distance between consecutive channels (all tensors share one layout).
    int64_t dim_size;
    int grad;
    int act;
    double alpha;
    double gain;
    double clamp;  // Negative = no clamp. Double so that float64 tensors get full precision.
};

// True for activations whose derivatives are computed from the forward input rather than its output.
BA_HOST_DEVICE bool derivative_uses_input(int act) { return act == kSwish; }

template <typename A> BA_HOST_DEVICE A sigmoid_of(A p) { return A(1) / (A(1) + ba_exp(-p)); }

// f(p) for one pre-activation value.
template <typename A> BA_HOST_DEVICE A activate(int act, A p, A alpha) {
    const A selu_scale = A(1.0507009873554804934193349852946);
    const A selu_alpha = A(1.6732632423543772848170429916717);
    switch (act) {
        case kRelu:     return p > A(0) ? p : A(0);
        case kLrelu:    return p > A(0) ? p : p * alpha;
        case kTanh:     return ba_tanh(p);
        case kSigmoid:  return sigmoid_of(p);
        case kElu:      return p > A(0) ? p : ba_expm1(p);
        case kSelu:     return selu_scale * (p > A(0) ? p : selu_alpha * ba_expm1(p));
        case kSoftplus: return p > A(20) ? p : ba_log1p(ba_exp(p));  // Same threshold as torch's softplus.
        case kSwish:    return p * sigmoid_of(p);
        default:        return p;
    }
}

// f'(p) (order 1) or f''(p) (order 2) from t = f(p) for every activation except swish, which takes p.
template <typename A> BA_HOST_DEVICE A activation_derivative(int act, int order, A v, A alpha) {
    const A selu_scale = A(1.0507009873554804934193349852946);
    const A selu_alpha = A(1.6732632423543772848170429916717);
    const bool first = (order == 1);
    switch (act) {
        case kRelu:     return first ? (v > A(0) ? A(1) : A(0)) : A(0);
        case kLrelu:    return first ? (v > A(0) ? A(1) : alpha) : A(0);
        case kTanh:     { A d = A(1) - v * v; return first ? d : A(-2) * v * d; }
        case kSigmoid:  { A d = v * (A(1) - v); return first ? d : d * (A(1) - A(2) * v); }
        case kElu:      return v > A(0) ? (first ? A(1) : A(0)) : v + A(1);
        case kSelu:     return v > A(0) ? (first ? selu_scale : A(0)) : v + selu_scale * selu_alpha;
        case kSoftplus: { A s = -ba_expm1(-v); return first ? s : s * (A(1) - s); }  // s = sigmoid(p).
        case kSwish:    { A s = sigmoid_of(v); A ds = s * (A(1) - s);
                          return first ? s + v * ds : ds * (A(2) + v * (A(1) - A(2) * s)); }
        default:        return first ? A(1) : A(0);
    }
}

// One output element. T = storage type, A = arithmetic type (float for half/bfloat16).
template <typename T, typename A> BA_HOST_DEVICE void bias_act_element(const BiasActParams& p, int64_t i) {
    const A gain = A(p.gain), clamp = A(p.clamp), alpha = A(p.alpha);
    const A bias = p.b ? A(static_cast<const T*>(p.b)[(i / p.dim_stride) % p.dim_size]) : A(0);
    A result;
    if (p.grad == 0) {
        A y = gain * activate<A>(p.act, A(static_cast<const T*>(p.x)[i]) + bias, alpha);
        result = (clamp >= A(0) && y > clamp) ? clamp : (clamp >= A(0) && y < -clamp) ? -clamp : y;
    } else {
        A y, v;
        if (derivative_uses_input(p.act)) {
            v = A(static_cast<const T*>(p.xref)[i]) + bias;
            y = gain * activate<A>(p.act, v, alpha);
        } else {
            y = p.yref ? A(static_cast<const T*>(p.yref)[i]) : A(0);
            v = gain != A(0) ? y / gain : A(0);
        }
        // A saved output equal to the clamp bound is treated as clamped (the unclamped value is lost).
        bool cut = clamp >= A(0) && (derivative_uses_input(p.act) ? ba_fabs(y) > clamp : ba_fabs(y) >= clamp);
        A slope = cut ? A(0) : gain * activation_derivative<A>(p.act, p.grad, v, alpha);
        result = A(static_cast<const T*>(p.dy)[i]) * slope;
    }
    static_cast<T*>(p.out)[i] = T(result);
}

// Launches the CUDA kernel on the current stream (defined in bias_act.cu for float, double, half, bfloat16).
template <typename T> void launch_bias_act_kernel(const BiasActParams& p);

}  // namespace bias_act_ops
