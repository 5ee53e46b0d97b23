// Python binding of the bias_act plugin: validates the arguments, then runs the CUDA kernel.
// Tensors on the CPU run the same element math (bias_act.h) in a plain loop. bias_act.py never sends
// CPU tensors here; the loop lets the kernel math be tested on machines without a GPU (compile this
// file alone with -DBIAS_ACT_CPU_ONLY).

#include <ATen/OpMathType.h>
#include <torch/extension.h>
#ifndef BIAS_ACT_CPU_ONLY
#include <c10/cuda/CUDAGuard.h>
#endif

#include "bias_act.h"

namespace {

using bias_act_ops::BiasActParams;
using bias_act_ops::bias_act_element;

// Empty tensors stand for "not given" (Python passes a shared empty tensor).
bool given(const torch::Tensor& t) { return t.defined() && t.numel() > 0; }

// Same sizes and, on every dimension longer than 1, the same strides: one offset addresses both.
bool same_layout(const torch::Tensor& a, const torch::Tensor& ref) {
    if (a.sizes() != ref.sizes())
        return false;
    for (int64_t d = 0; d < ref.dim(); ++d)
        if (ref.size(d) > 1 && a.stride(d) != ref.stride(d))
            return false;
    return true;
}

void check_like(const torch::Tensor& t, const torch::Tensor& ref, const char* name) {
    TORCH_CHECK(t.device() == ref.device(), "bias_act: ", name, " is on ", t.device(), " but the data is on ", ref.device());
    TORCH_CHECK(t.scalar_type() == ref.scalar_type(), "bias_act: ", name, " has dtype ", t.scalar_type(),
                " but the data has ", ref.scalar_type());
}

void check_arguments(const torch::Tensor& ref, const char* ref_name, const torch::Tensor& b, const torch::Tensor& xref,
                     const torch::Tensor& yref, int64_t grad, int64_t dim, int64_t act, double clamp) {
    TORCH_CHECK(grad >= 0 && grad <= 2, "bias_act: grad must be 0, 1 or 2, got ", grad);
    TORCH_CHECK(act >= bias_act_ops::kLinear && act <= bias_act_ops::kSwish, "bias_act: unknown activation index ", act);
    TORCH_CHECK(ref.defined(), "bias_act: ", ref_name, " is required");
    TORCH_CHECK(dim >= 0 && dim < ref.dim(), "bias_act: dim ", dim, " out of range for a ", ref.dim(), "-D tensor");
    TORCH_CHECK(ref.is_floating_point(), "bias_act: ", ref_name, " must be a floating-point tensor, got ", ref.scalar_type());
    TORCH_CHECK(ref.is_non_overlapping_and_dense(), "bias_act: ", ref_name, " must be dense (contiguous in some memory format)");
    if (given(b)) {
        check_like(b, ref, "b");
        TORCH_CHECK(b.dim() == 1 && b.size(0) == ref.size(dim) && b.is_contiguous(),
                    "bias_act: b must be a contiguous 1-D tensor of length ", ref.size(dim), ", got shape ", b.sizes());
    }
    if (grad == 0)
        return;
    const bool needs_x = bias_act_ops::derivative_uses_input(int(act));
    const bool needs_y = !needs_x && (act != bias_act_ops::kLinear || clamp >= 0);
    TORCH_CHECK(!needs_x || given(xref) || ref.numel() == 0, "bias_act: xref is required for this activation");
    TORCH_CHECK(!needs_y || given(yref) || ref.numel() == 0, "bias_act: yref is required for this activation/clamp");
    for (auto [t, name] : {std::make_pair(&xref, "xref"), std::make_pair(&yref, "yref")}) {
        if (given(*t)) {
            check_like(*t, ref, name);
            TORCH_CHECK(same_layout(*t, ref), "bias_act: ", name, " must have the shape and memory layout of dy");
        }
    }
}

template <typename T>
void run_on_cpu(const BiasActParams& p) {
    using A = at::opmath_type<T>;
    for (int64_t i = 0; i < p.numel; ++i)
        bias_act_element<T, A>(p, i);
}

}  // namespace

// grad 0: forward of x; grad 1/2: first/second derivative times dy (see bias_act.h). x, b, xref,
// yref, dy may be empty tensors where unused. The result has the shape and memory layout of x
// (grad 0) or dy (grad 1/2).
torch::Tensor bias_act(torch::Tensor x, torch::Tensor b, torch::Tensor xref, torch::Tensor yref, torch::Tensor dy,
                       int64_t grad, int64_t dim, int64_t act, double alpha, double gain, double clamp) {
    const torch::Tensor& ref = (grad == 0) ? x : dy;
    check_arguments(ref, grad == 0 ? "x" : "dy", b, xref, yref, grad, dim, act, clamp);
    torch::Tensor out = torch::empty_like(ref);  // Keeps the strides of a dense tensor.
    TORCH_CHECK(same_layout(out, ref), "bias_act: could not allocate the output in the layout of the input");
    if (ref.numel() == 0)
        return out;

    BiasActParams p;
    p.x = grad == 0 ? x.data_ptr() : nullptr;
    p.b = given(b) ? b.data_ptr() : nullptr;
    p.xref = given(xref) ? xref.data_ptr() : nullptr;
    p.yref = given(yref) ? yref.data_ptr() : nullptr;
    p.dy = grad == 0 ? nullptr : dy.data_ptr();
    p.out = out.data_ptr();
    p.numel = ref.numel();
    p.dim_size = ref.size(dim);
    p.dim_stride = p.dim_size > 1 ? ref.stride(dim) : 1;
    p.grad = int(grad);
    p.act = int(act);
    p.alpha = alpha;
    p.gain = gain;
    p.clamp = clamp;

    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, ref.scalar_type(), "bias_act", [&] {
        if (ref.is_cuda()) {
#ifdef BIAS_ACT_CPU_ONLY
            TORCH_CHECK(false, "bias_act: this build of the plugin has no CUDA kernel");
#else
            const c10::cuda::CUDAGuard device_guard(ref.device());
            bias_act_ops::launch_bias_act_kernel<scalar_t>(p);
#endif
        } else {
            run_on_cpu<scalar_t>(p);
        }
    });
    return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("bias_act", &bias_act, "Fused bias + activation + gain + clamp, and its 1st/2nd derivatives",
          py::arg("x"), py::arg("b"), py::arg("xref"), py::arg("yref"), py::arg("dy"), py::arg("grad"), py::arg("dim"),
          py::arg("act"), py::arg("alpha"), py::arg("gain"), py::arg("clamp"));
}
