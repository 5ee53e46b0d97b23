// CUDA kernel of bias_act: a grid-stride loop over the elements, math in bias_act.h.

#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "bias_act.h"

namespace bias_act_ops {

template <typename T>
__global__ void bias_act_kernel(BiasActParams p) {
    using A = at::opmath_type<T>;  // float for half/bfloat16, otherwise T itself.
    const int64_t step = int64_t(gridDim.x) * blockDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.numel; i += step)
        bias_act_element<T, A>(p, i);
}

template <typename T>
void launch_bias_act_kernel(const BiasActParams& p) {
    constexpr int threads = 256;
    constexpr int64_t max_blocks = 65535;  // The loop strides over the rest; plenty to fill any GPU.
    const int64_t wanted = (p.numel + threads - 1) / threads;
    const int blocks = int(wanted < max_blocks ? wanted : max_blocks);
    bias_act_kernel<T><<<blocks, threads, 0, at::cuda::getCurrentCUDAStream()>>>(p);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template void launch_bias_act_kernel<float>(const BiasActParams&);
template void launch_bias_act_kernel<double>(const BiasActParams&);
template void launch_bias_act_kernel<c10::Half>(const BiasActParams&);
template void launch_bias_act_kernel<c10::BFloat16>(const BiasActParams&);

}  // namespace bias_act_ops
