// Declarations shared by the host binding (upfirdn2d.cpp) and the CUDA kernel (upfirdn2d.cu).
//
// The op: per channel, insert (up - 1) zeros after every input pixel, pad with zeros (a negative
// pad crops), filter with a 2-D FIR kernel, then keep every down-th pixel.

#pragma once
#include <ATen/ATen.h>

// Resampling geometry of one upfirdn2d call; x is the horizontal (width) axis.
struct UpFirDnGeometry
{
    int up_x, up_y;
    int down_x, down_y;
    int pad_x0, pad_x1, pad_y0, pad_y1;
    bool flip;  // true: apply the filter as a cross-correlation; false: as a true convolution.
    float gain; // multiplies every output value.
};

// Fills y ([N, C, outH, outW], allocated by the caller, any strides) from
// x ([N, C, inH, inW], float16/bfloat16/float32/float64, any strides) and
// f ([fh, fw], contiguous float32). All three live on the current CUDA device.
void upfirdn2d_cuda_run(const at::Tensor& x, const at::Tensor& f, at::Tensor& y, const UpFirDnGeometry& geom);
