// Python binding for the upfirdn2d CUDA kernel: validates arguments, allocates the output and
// launches upfirdn2d_cuda_run(). Gradients are handled on the Python side (upfirdn2d.py).

#include <torch/extension.h>
#include <c10/cuda/CUDAGuard.h>
#include <climits>
#include "upfirdn2d.h"

// Output length along one axis: upsampled + padded length, minus the filter support, strided by down.
static int64_t resampled_size(int64_t in, int up, int pad0, int pad1, int64_t taps, int down, const char* axis)
{
    const int64_t span = in * up + pad0 + pad1 - taps;
    TORCH_CHECK(span >= 0, "upfirdn2d: the padded ", axis, " extent (", in * up + pad0 + pad1,
                ") is smaller than the filter (", taps, " taps)");
    return span / down + 1;
}

// x: [N, C, H, W] float16/bfloat16/float32/float64 on CUDA, any strides.
// f: [fh, fw] float32 on the same device. Returns [N, C, outH, outW], channels_last when x is.
static torch::Tensor upfirdn2d(torch::Tensor x, torch::Tensor f, int upx, int upy, int downx, int downy,
                               int padx0, int padx1, int pady0, int pady1, bool flip, double gain)
{
    TORCH_CHECK(x.is_cuda(), "upfirdn2d: x must be a CUDA tensor");
    TORCH_CHECK(f.device() == x.device(), "upfirdn2d: f must be on the same device as x");
    TORCH_CHECK(x.dim() == 4, "upfirdn2d: x must have shape [N, C, H, W], got ", x.dim(), " dimensions");
    TORCH_CHECK(f.dim() == 2, "upfirdn2d: f must have shape [fh, fw], got ", f.dim(), " dimensions");
    TORCH_CHECK(f.scalar_type() == at::kFloat, "upfirdn2d: f must be float32, got ", f.scalar_type());
    const auto dtype = x.scalar_type();
    TORCH_CHECK(dtype == at::kFloat || dtype == at::kHalf || dtype == at::kDouble || dtype == at::kBFloat16,
                "upfirdn2d: x must be float16, bfloat16, float32 or float64, got ", dtype);
    TORCH_CHECK(upx >= 1 && upy >= 1, "upfirdn2d: up factors must be >= 1, got ", upx, ", ", upy);
    TORCH_CHECK(downx >= 1 && downy >= 1, "upfirdn2d: down factors must be >= 1, got ", downx, ", ", downy);
    TORCH_CHECK(f.size(0) >= 1 && f.size(1) >= 1, "upfirdn2d: f must not be empty");
    TORCH_CHECK(f.numel() * (int64_t)sizeof(float) <= 48 * 1024, "upfirdn2d: filter too large (", f.numel(), " taps)");
    // The kernel uses 32-bit arithmetic for coordinates; 64-bit for element offsets.
    TORCH_CHECK(x.size(1) <= INT_MAX && x.size(2) * upy + std::abs(pady0) + std::abs(pady1) <= INT_MAX &&
                x.size(3) * upx + std::abs(padx0) + std::abs(padx1) <= INT_MAX,
                "upfirdn2d: tensor dimensions too large");

    const int64_t out_h = resampled_size(x.size(2), upy, pady0, pady1, f.size(0), downy, "height");
    const int64_t out_w = resampled_size(x.size(3), upx, padx0, padx1, f.size(1), downx, "width");

    const at::cuda::OptionalCUDAGuard device_guard(x.device());
    const auto layout = x.suggest_memory_format() == at::MemoryFormat::ChannelsLast ? at::MemoryFormat::ChannelsLast
                                                                                     : at::MemoryFormat::Contiguous;
    torch::Tensor y = torch::empty({x.size(0), x.size(1), out_h, out_w}, x.options().memory_format(layout));

    UpFirDnGeometry geom;
    geom.up_x = upx;
    geom.up_y = upy;
    geom.down_x = downx;
    geom.down_y = downy;
    geom.pad_x0 = padx0;
    geom.pad_x1 = padx1;
    geom.pad_y0 = pady0;
    geom.pad_y1 = pady1;
    geom.flip = flip;
    geom.gain = (float)gain;
    upfirdn2d_cuda_run(x, f.contiguous(), y, geom);
    return y;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m)
{
    m.def("upfirdn2d", &upfirdn2d, "Upsample, pad, FIR-filter and downsample a batch of images (CUDA)",
          pybind11::arg("x"), pybind11::arg("f"), pybind11::arg("upx"), pybind11::arg("upy"),
          pybind11::arg("downx"), pybind11::arg("downy"), pybind11::arg("padx0"), pybind11::arg("padx1"),
          pybind11::arg("pady0"), pybind11::arg("pady1"), pybind11::arg("flip"), pybind11::arg("gain"));
}
