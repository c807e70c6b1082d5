// Matrix products: matmul (batched, broadcast), conv (1x1 direct, general via im2col), all on
// cblas_sgemm. Operand transposes are expressed as strides and become cblas transpose flags.
// Parallelism is ours (parallel.h; BLAS itself runs single-threaded): a batched matmul spreads its
// batch entries over the pool, a single large GEMM is cut into a few fixed blocks of C's rows or
// columns. The blocks depend only on the shape, never on how many threads run them, so results
// are the same with one thread or two.
#include <algorithm>
#include <cstring>

#include "common/fp16.h"
#include "server/backend/cpu/kernels/kernels.h"
#include "server/backend/cpu/kernels/parallel.h"
#include "server/backend/cpu/view.h"

#if defined(ANERD_BLAS_ACCELERATE)
#include <Accelerate/Accelerate.h>
#else
#include <cblas.h>
#endif

namespace anerd::backend::cpu {
namespace {

// cblas operand descriptor for a row-major call.
struct BlasOperand {
  const float* data;
  CBLAS_TRANSPOSE trans;
  int64_t ld;
};

// Normalises strides of a rows x cols matrix: dims of extent 1 get the "natural" stride.
MatRef Normalize(MatRef m, int64_t rows, int64_t cols) {
  if (cols == 1) m.cs = 1;
  if (rows == 1) m.rs = m.cs == 1 ? std::max<int64_t>(cols, 1) : 1;
  if (cols == 1 && rows > 1 && m.rs != 1) m.cs = 1;
  return m;
}

BlasOperand ToBlas(MatRef m, int64_t rows, int64_t cols) {
  m = Normalize(m, rows, cols);
  if (m.cs == 1 && m.rs >= std::max<int64_t>(cols, 1)) return {m.data, CblasNoTrans, m.rs};
  return {m.data, CblasTrans, m.cs};
}

}  // namespace

bool GemmReadable(const MatRef& m0, int64_t rows, int64_t cols) {
  const MatRef m = Normalize(m0, rows, cols);
  if (m.cs == 1 && m.rs >= std::max<int64_t>(cols, 1)) return true;
  return m.rs == 1 && m.cs >= std::max<int64_t>(rows, 1);
}

namespace {

// One single-threaded cblas call (BLAS threading is off: ConfigureBlasThreading).
void GemmBlock(int64_t m, int64_t n, int64_t k, const MatRef& a, const MatRef& b, const MatOut& c,
               bool accumulate) {
  const float beta = accumulate ? 1.0f : 0.0f;
  MatRef cr = Normalize(MatRef{c.data, c.rs, c.cs}, m, n);
  if (cr.cs == 1) {
    const BlasOperand A = ToBlas(a, m, k), B = ToBlas(b, k, n);
    cblas_sgemm(CblasRowMajor, A.trans, B.trans, m, n, k, 1.0f, A.data, A.ld, B.data, B.ld, beta,
                c.data, cr.rs);
    return;
  }
  // C stored transposed: C^T (N x M, row stride cs) = B^T * A^T.
  const MatRef bt{b.data, b.cs, b.rs}, at{a.data, a.cs, a.rs};
  const BlasOperand A = ToBlas(bt, n, k), B = ToBlas(at, k, m);
  cblas_sgemm(CblasRowMajor, A.trans, B.trans, n, m, k, 1.0f, A.data, A.ld, B.data, B.ld, beta,
              c.data, cr.cs);
}

// Block plan of one GEMM: C's rows (or columns) in `count` runs of `len` (the last may be
// shorter, by less than kLenAlign per block). Blocks have at least kMinBlockMacs multiply-adds
// and kMinBlockLen rows/columns (the last one possibly fewer).
struct GemmSplit {
  bool rows = true;
  int64_t len = 0, count = 1;
};
constexpr int64_t kMinBlockMacs = int64_t{1} << 21;  // ~40 µs on one core
constexpr int64_t kMaxBlocks = 4;  // a late helper still finds work; few re-packs of the operand
constexpr int64_t kMinBlockLen = 16;
constexpr int64_t kLenAlign = 8;  // whole micro-kernel tiles per block

// True when this backend's pool runs the GEMMs: BLAS itself is single-threaded
// (ConfigureBlasThreading; the first GEMM configures a process that has not done so yet). With
// Accelerate, whose own threads are left on, GEMMs are never split (no pool inside a pool).
bool PoolRunsGemms() {
#if defined(ANERD_BLAS_ACCELERATE)
  return false;
#else
  ConfigureBlasThreading();
  return true;
#endif
}

GemmSplit PlanSplit(int64_t m, int64_t n, int64_t k) {
  GemmSplit s;
  s.rows = m >= n;
  const int64_t extent = s.rows ? m : n;
  s.len = extent;
  if (!PoolRunsGemms()) return s;
  const int64_t by_work = m * n * k / kMinBlockMacs;
  const int64_t blocks = std::min({kMaxBlocks, by_work, extent / kMinBlockLen});
  if (blocks < 2) return s;
  s.len = (extent + blocks - 1) / blocks;
  s.len = (s.len + kLenAlign - 1) / kLenAlign * kLenAlign;
  s.count = (extent + s.len - 1) / s.len;
  return s;
}

}  // namespace

int64_t GemmBlocks(int64_t m, int64_t n, int64_t k) { return PlanSplit(m, n, k).count; }

void Gemm(int64_t m, int64_t n, int64_t k, const MatRef& a, const MatRef& b, const MatOut& c,
          bool accumulate) {
  const GemmSplit split = PlanSplit(m, n, k);
  if (split.count < 2) {
    GemmBlock(m, n, k, a, b, c, accumulate);
    return;
  }
  ParallelFor(split.count, 1, [&](int, int64_t b0, int64_t b1) {
    for (int64_t i = b0; i < b1; ++i) {
      const int64_t lo = i * split.len;
      const int64_t len = std::min(split.len, (split.rows ? m : n) - lo);
      if (split.rows) {
        GemmBlock(len, n, k, MatRef{a.data + lo * a.rs, a.rs, a.cs}, b,
                  MatOut{c.data + lo * c.rs, c.rs, c.cs}, accumulate);
      } else {
        GemmBlock(m, len, k, a, MatRef{b.data + lo * b.cs, b.rs, b.cs},
                  MatOut{c.data + lo * c.cs, c.rs, c.cs}, accumulate);
      }
    }
  });
}

int64_t MatmulScratchFloats(const MatmulArgs& args) {
  const int r = static_cast<int>(args.out_shape.size());
  const int64_t m = args.out_shape[r - 2], n = args.out_shape[r - 1];
  const int64_t k = args.x.shape.back();
  return 2 * (m * k + k * n);  // one region per ParallelFor part
}

namespace {

// Offset of batch index `bi` (row-major over out batch dims) in an operand with broadcast batch.
int64_t BatchOffset(const Strided& s, const std::vector<int64_t>& batch, int64_t bi) {
  const int lead = static_cast<int>(batch.size()) - (static_cast<int>(s.shape.size()) - 2);
  int64_t off = 0;
  for (int d = static_cast<int>(batch.size()) - 1; d >= 0; --d) {
    const int64_t idx = bi % batch[d];
    bi /= batch[d];
    const int sd = d - lead;
    if (sd >= 0 && s.shape[sd] != 1) off += idx * s.strides[sd];
  }
  return off;
}

MatRef Operand(const Strided& s, int64_t off, int64_t rows, int64_t cols, float* scratch) {
  const int r = static_cast<int>(s.shape.size());
  MatRef m{s.data + off, s.strides[r - 2], s.strides[r - 1]};
  if (GemmReadable(m, rows, cols)) return m;
  Strided sub{m.data, {rows, cols}, {m.rs, m.cs}};
  CopyStrided(sub, scratch);
  return MatRef{scratch, cols, 1};
}

// Rounds an m x n output block to fp16 in place while it is still in cache: one run when it is
// contiguous, else one run per unit-stride row (or column).
void RoundBlock(const MatOut& c, int64_t m, int64_t n) {
  if ((c.cs == 1 && (c.rs == n || m == 1)) || (c.rs == 1 && (c.cs == m || n == 1))) {
    RoundToHalfInPlace(c.data, m * n);
  } else if (c.cs == 1) {
    for (int64_t i = 0; i < m; ++i) RoundToHalfInPlace(c.data + i * c.rs, n);
  } else {
    for (int64_t j = 0; j < n; ++j) RoundToHalfInPlace(c.data + j * c.cs, m);
  }
}

}  // namespace

void Matmul(const MatmulArgs& args, float* out, float* scratch, Rounding rounding) {
  const int r = static_cast<int>(args.out_shape.size());
  const int64_t m = args.out_shape[r - 2], n = args.out_shape[r - 1];
  const int64_t k = args.x.shape.back();
  std::vector<int64_t> batch(args.out_shape.begin(), args.out_shape.end() - 2);
  int64_t nb = 1;
  for (int64_t d : batch) nb *= d;
  const int64_t part_scratch = m * k + k * n;
  // Batch entries go to the pool whole (each one cblas call; runs of small entries together, at
  // least kMinBlockMacs per run); a single product is split by Gemm instead. So an entry's bits
  // can depend on whether it is batched, never on the number of threads.
  const int64_t macs = std::max<int64_t>(m * n * k, 1);
  const int64_t min_run = std::max<int64_t>(1, kMinBlockMacs / macs);
  auto run = [&](int part, int64_t b0, int64_t b1) {
    float* const sc = scratch + part * part_scratch;
    for (int64_t bi = b0; bi < b1; ++bi) {
      int64_t ooff = 0, rem = bi;
      for (int d = static_cast<int>(batch.size()) - 1; d >= 0; --d) {
        ooff += (rem % batch[d]) * args.out_strides[d];
        rem /= batch[d];
      }
      const MatRef a = Operand(args.x, BatchOffset(args.x, batch, bi), m, k, sc);
      const MatRef b = Operand(args.y, BatchOffset(args.y, batch, bi), k, n, sc + m * k);
      const MatOut c{out + ooff, args.out_strides[r - 2], args.out_strides[r - 1]};
      if (nb > 1) {
        GemmBlock(m, n, k, a, b, c, false);
      } else {
        Gemm(m, n, k, a, b, c, false);
      }
      if (rounding == Rounding::kFp16) RoundBlock(c, m, n);
    }
  };
  if (nb > 1 && PoolRunsGemms()) {
    ParallelFor(nb, min_run, run);
  } else {
    run(0, 0, nb);
  }
}

int64_t ConvScratchFloats(const Strided& x, const std::vector<int64_t>& wshape,
                          const std::vector<int64_t>& out_shape, const ConvParams& p) {
  const int64_t cg = wshape[1], kh = wshape[2], kw = wshape[3];
  const int64_t hw = out_shape[2] * out_shape[3];
  return cg * kh * kw * hw + x.shape[1] * x.shape[2] * x.shape[3];
}

namespace {

// col[(c*KH + i)*KW + j][oh*OW + ow] = x[c][oh*s0 + i*d0 - pad_t][ow*s1 + j*d1 - pad_l] or 0.
void Im2Col(const float* x, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
            const ConvParams& p, int64_t oh, int64_t ow, float* col) {
  for (int64_t ci = 0; ci < c; ++ci) {
    for (int64_t i = 0; i < kh; ++i) {
      for (int64_t j = 0; j < kw; ++j) {
        float* row = col + ((ci * kh + i) * kw + j) * oh * ow;
        for (int64_t y = 0; y < oh; ++y) {
          const int64_t iy = y * p.stride[0] + i * p.dilation[0] - p.pad[0];
          for (int64_t xo = 0; xo < ow; ++xo) {
            const int64_t ix = xo * p.stride[1] + j * p.dilation[1] - p.pad[2];
            const bool in = iy >= 0 && iy < h && ix >= 0 && ix < w;
            row[y * ow + xo] = in ? x[(ci * h + iy) * w + ix] : 0.0f;
          }
        }
      }
    }
  }
}

bool IsPointwise(const std::vector<int64_t>& wshape, const ConvParams& p) {
  return wshape[2] == 1 && wshape[3] == 1 && p.stride[0] == 1 && p.stride[1] == 1 &&
         p.pad[0] == 0 && p.pad[1] == 0 && p.pad[2] == 0 && p.pad[3] == 0;
}

}  // namespace

void Conv2d(const Strided& x, const float* weight, const std::vector<int64_t>& wshape,
            const float* bias, const ConvParams& p, const std::vector<int64_t>& out_shape,
            float* out, float* scratch) {
  const int64_t nbatch = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
  const int64_t oc = out_shape[1], oh = out_shape[2], ow = out_shape[3];
  const int64_t g = p.groups, cg = c / g, ocg = oc / g, kk = wshape[1] * wshape[2] * wshape[3];
  const bool pointwise = IsPointwise(wshape, p);
  // Each channel's H*W plane must be one unit-stride run for cblas (or im2col) to read x in place.
  const bool plane_unit =
      h * w == 1 ||
      (w == 1 ? x.strides[2] == 1 : x.strides[3] == 1 && (h == 1 || x.strides[2] == w));
  const bool direct =
      plane_unit && (c == 1 || x.strides[1] >= h * w) && (pointwise || x.strides[1] == h * w);
  for (int64_t n = 0; n < nbatch; ++n) {
    const float* xn = x.data + n * x.strides[0];
    int64_t cs = x.strides[1];
    if (!direct) {
      Strided plane{xn, {c, h, w}, {x.strides[1], x.strides[2], x.strides[3]}};
      CopyStrided(plane, scratch);
      xn = scratch;
      cs = h * w;
    }
    float* on = out + n * oc * oh * ow;
    for (int64_t gi = 0; gi < g; ++gi) {
      const float* xg = xn + gi * cg * cs;
      const MatRef wm{weight + gi * ocg * kk, kk, 1};
      MatOut om{on + gi * ocg * oh * ow, oh * ow, 1};
      if (pointwise) {
        Gemm(ocg, oh * ow, cg, wm, MatRef{xg, cs, 1}, om, false);
        continue;
      }
      float* col = scratch + (direct ? 0 : c * h * w);
      Im2Col(xg, cg, h, w, wshape[2], wshape[3], p, oh, ow, col);
      Gemm(ocg, oh * ow, kk, wm, MatRef{col, oh * ow, 1}, om, false);
    }
  }
  if (bias == nullptr) return;
  for (int64_t n = 0; n < nbatch; ++n) {
    for (int64_t o = 0; o < oc; ++o) {
      float* row = out + (n * oc + o) * oh * ow;
      for (int64_t i = 0; i < oh * ow; ++i) row[i] += bias[o];
    }
  }
}

}  // namespace anerd::backend::cpu
