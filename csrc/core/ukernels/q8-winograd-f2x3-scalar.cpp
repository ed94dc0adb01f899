// Winograd F(2x2, 3x3), scalar: the reference the SIMD kernels are tested against
// (qwinograd_ukernels.h). Sums are taken in uint32 so that wrap-around is defined.
#include <cstdint>

#include "qwinograd_ukernels.h"

namespace circle_quant {
namespace ukernels {
namespace {

void input_scalar(size_t tiles, size_t channels, const uint8_t* x, size_t row_stride, size_t pixel_stride,
                  bool is_signed, int32_t za, int16_t* v) {
  for (size_t t = 0; t < tiles; ++t) {
    const uint8_t* patch = x + 2 * t * pixel_stride;
    int16_t* out = v + t * kWinogradPositions * channels;
    for (size_t c = 0; c < channels; ++c) {
      int32_t d[4][4], e[4][4];
      for (size_t i = 0; i < 4; ++i) {
        for (size_t j = 0; j < 4; ++j) {
          const uint8_t byte = patch[i * row_stride + j * pixel_stride + c];
          d[i][j] = (is_signed ? static_cast<int32_t>(static_cast<int8_t>(byte)) : static_cast<int32_t>(byte)) - za;
        }
      }
      for (size_t j = 0; j < 4; ++j) {  // Bᵀ d
        e[0][j] = d[0][j] - d[2][j];
        e[1][j] = d[1][j] + d[2][j];
        e[2][j] = d[2][j] - d[1][j];
        e[3][j] = d[1][j] - d[3][j];
      }
      for (size_t i = 0; i < 4; ++i) {  // (Bᵀ d) B
        out[(4 * i + 0) * channels + c] = static_cast<int16_t>(e[i][0] - e[i][2]);
        out[(4 * i + 1) * channels + c] = static_cast<int16_t>(e[i][1] + e[i][2]);
        out[(4 * i + 2) * channels + c] = static_cast<int16_t>(e[i][2] - e[i][1]);
        out[(4 * i + 3) * channels + c] = static_cast<int16_t>(e[i][1] - e[i][3]);
      }
    }
  }
}

void gemm_scalar(size_t rows, size_t pairs, const int16_t* v, size_t v_channels, const int16_t* u, int32_t* m,
                 size_t m_stride) {
  for (size_t p = 0; p < kWinogradPositions; ++p) {
    const int16_t* up = u + p * pairs * 32;
    for (size_t r = 0; r < rows; ++r) {
      const int16_t* vr = v + (r * kWinogradPositions + p) * v_channels;
      for (size_t j = 0; j < 16; ++j) {
        uint32_t sum = 0;
        for (size_t q = 0; q < pairs; ++q) {
          sum += static_cast<uint32_t>(vr[2 * q] * up[q * 32 + 2 * j]);
          sum += static_cast<uint32_t>(vr[2 * q + 1] * up[q * 32 + 2 * j + 1]);
        }
        m[p * m_stride + r * 16 + j] = static_cast<int32_t>(sum);
      }
    }
  }
}

void output_scalar(size_t rows, const int32_t* m, size_t m_stride, int32_t* y, size_t y_row_stride) {
  for (size_t r = 0; r < rows; ++r) {
    for (size_t j = 0; j < 16; ++j) {
      uint32_t a[4][4], t[2][4];
      for (size_t p = 0; p < kWinogradPositions; ++p)
        a[p / 4][p % 4] = static_cast<uint32_t>(m[p * m_stride + r * 16 + j]);
      for (size_t c = 0; c < 4; ++c) {  // Aᵀ M
        t[0][c] = a[0][c] + a[1][c] + a[2][c];
        t[1][c] = a[1][c] - a[2][c] - a[3][c];
      }
      for (size_t dy = 0; dy < 2; ++dy) {  // (Aᵀ M) A, then / 4 (exact, see the header)
        const int32_t y0 = static_cast<int32_t>(t[dy][0] + t[dy][1] + t[dy][2]);
        const int32_t y1 = static_cast<int32_t>(t[dy][1] - t[dy][2] - t[dy][3]);
        y[dy * y_row_stride + (2 * r) * 16 + j] = y0 >> 2;
        y[dy * y_row_stride + (2 * r + 1) * 16 + j] = y1 >> 2;
      }
    }
  }
}

}  // namespace

extern constexpr WinogradMicrokernel q8_winograd_f2x3_scalar = {"q8-winograd-f2x3-scalar", &input_scalar, &gemm_scalar,
                                                                &output_scalar};

}  // namespace ukernels
}  // namespace circle_quant
