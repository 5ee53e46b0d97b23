// CUDA kernel for upfirdn2d: one thread per output pixel, gathering only the input pixels that
// the zero-insertion upsampling leaves non-zero, so no upsampled intermediate is ever stored.

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include "upfirdn2d.h"

namespace {

// Everything the kernel needs, passed by value (lives in the kernel's constant parameter space).
struct KernelArgs
{
    int channels, in_h, in_w, out_h, out_w, f_h, f_w;
    int up_x, up_y, down_x, down_y, pad_x0, pad_y0;
    bool flip, channels_last;
    float gain;
    int64_t total;                     // number of output elements
    int64_t xs_n, xs_c, xs_h, xs_w;    // input strides, in elements
    int64_t ys_n, ys_c, ys_h, ys_w;    // output strides, in elements
};

// Integer division rounding towards -inf / +inf; b > 0, a may be negative (left padding).
__device__ __forceinline__ int div_floor(int a, int b) { return (a >= 0) ? a / b : -((-a + b - 1) / b); }
__device__ __forceinline__ int div_ceil(int a, int b) { return div_floor(a + b - 1, b); }

template <typename scalar_t>
__global__ void upfirdn2d_gather_kernel(const scalar_t* __restrict__ x, const float* __restrict__ f,
                                        scalar_t* __restrict__ y, const KernelArgs a)
{
    using acc_t = at::opmath_type<scalar_t>;

    // Stage the filter in shared memory in cross-correlation order, so that the inner loop reads
    // tap (ky, kx) for the input pixel at offset (ky, kx) from the window origin.
    extern __shared__ float taps[];
    const int num_taps = a.f_h * a.f_w;
    for (int i = threadIdx.x; i < num_taps; i += blockDim.x)
        taps[i] = a.flip ? f[i] : f[num_taps - 1 - i];
    __syncthreads();

    const int64_t stride = (int64_t)blockDim.x * gridDim.x;
    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < a.total; idx += stride)
    {
        // Enumerate outputs in the memory order of y so that neighbouring threads write
        // neighbouring addresses for both NCHW and channels_last tensors.
        int64_t rest = idx;
        int c, ox, oy;
        if (a.channels_last)
        {
            c = (int)(rest % a.channels); rest /= a.channels;
            ox = (int)(rest % a.out_w); rest /= a.out_w;
            oy = (int)(rest % a.out_h); rest /= a.out_h;
        }
        else
        {
            ox = (int)(rest % a.out_w); rest /= a.out_w;
            oy = (int)(rest % a.out_h); rest /= a.out_h;
            c = (int)(rest % a.channels); rest /= a.channels;
        }
        const int64_t n = rest;

        // Window origin in the coordinates of the (unpadded) upsampled image; input pixel i sits
        // at position i * up there, so only taps k with (origin + k) divisible by up contribute.
        const int org_x = ox * a.down_x - a.pad_x0;
        const int org_y = oy * a.down_y - a.pad_y0;
        const int ix_lo = max(div_ceil(org_x, a.up_x), 0);
        const int ix_hi = min(div_floor(org_x + a.f_w - 1, a.up_x), a.in_w - 1);
        const int iy_lo = max(div_ceil(org_y, a.up_y), 0);
        const int iy_hi = min(div_floor(org_y + a.f_h - 1, a.up_y), a.in_h - 1);

        const scalar_t* plane = x + n * a.xs_n + (int64_t)c * a.xs_c;
        acc_t acc = acc_t(0);
        for (int iy = iy_lo; iy <= iy_hi; ++iy)
        {
            const int row_base = (iy * a.up_y - org_y) * a.f_w - org_x; // tap index = row_base + ix * up_x
            const scalar_t* x_row = plane + (int64_t)iy * a.xs_h;
            for (int ix = ix_lo; ix <= ix_hi; ++ix)
                acc += static_cast<acc_t>(x_row[(int64_t)ix * a.xs_w]) * static_cast<acc_t>(taps[row_base + ix * a.up_x]);
        }
        const int64_t y_off = n * a.ys_n + (int64_t)c * a.ys_c + (int64_t)oy * a.ys_h + (int64_t)ox * a.ys_w;
        y[y_off] = static_cast<scalar_t>(acc * static_cast<acc_t>(a.gain));
    }
}

} // namespace

void upfirdn2d_cuda_run(const at::Tensor& x, const at::Tensor& f, at::Tensor& y, const UpFirDnGeometry& geom)
{
    KernelArgs a;
    a.channels = (int)x.size(1);
    a.in_h = (int)x.size(2);
    a.in_w = (int)x.size(3);
    a.out_h = (int)y.size(2);
    a.out_w = (int)y.size(3);
    a.f_h = (int)f.size(0);
    a.f_w = (int)f.size(1);
    a.up_x = geom.up_x;
    a.up_y = geom.up_y;
    a.down_x = geom.down_x;
    a.down_y = geom.down_y;
    a.pad_x0 = geom.pad_x0;
    a.pad_y0 = geom.pad_y0;
    a.flip = geom.flip;
    a.gain = geom.gain;
    a.channels_last = (y.suggest_memory_format() == at::MemoryFormat::ChannelsLast);
    a.total = y.numel();
    a.xs_n = x.stride(0); a.xs_c = x.stride(1); a.xs_h = x.stride(2); a.xs_w = x.stride(3);
    a.ys_n = y.stride(0); a.ys_c = y.stride(1); a.ys_h = y.stride(2); a.ys_w = y.stride(3);
    if (a.total == 0)
        return;

    const int threads = 256;
    const int64_t wanted_blocks = (a.total + threads - 1) / threads;
    // Enough blocks to fill the GPU several times over; the grid-stride loop covers the rest.
    const int64_t max_blocks = (int64_t)at::cuda::getCurrentDeviceProperties()->multiProcessorCount * 32;
    const int blocks = (int)std::min(wanted_blocks, max_blocks);
    const size_t shared_bytes = (size_t)a.f_h * a.f_w * sizeof(float);
    cudaStream_t stream = at::cuda::getCurrentCUDAStream();

    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, x.scalar_type(), "upfirdn2d_cuda", [&] {
        upfirdn2d_gather_kernel<scalar_t><<<blocks, threads, shared_bytes, stream>>>(
            x.data_ptr<scalar_t>(), f.data_ptr<float>(), y.data_ptr<scalar_t>(), a);
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
}
