// scaled_dot_product_attention: softmax(Q K^T / sqrt(E) + mask) V, per batch, fp32 throughout.
#include <cmath>

#include "server/backend/cpu/kernels/kernels.h"
#include "server/backend/cpu/kernels/strided_iter.h"

namespace anerd::backend::cpu {

int64_t AttentionScratchFloats(int64_t l, int64_t s) { return 2 * l * s; }

void Attention(const float* q, const float* k, const float* v, const Strided* mask, int64_t batch,
               int64_t l, int64_t s, int64_t e, int64_t ev, float* out, float* scratch) {
  float* scores = scratch;
  float* probs = scratch + l * s;
  const float scale = 1.0f / std::sqrt(static_cast<float>(e));
  for (int64_t b = 0; b < batch; ++b) {
    const float* qb = q + b * l * e;
    const float* kb = k + b * s * e;
    Gemm(l, s, e, MatRef{qb, e, 1}, MatRef{kb, 1, e}, MatOut{scores, s, 1}, false);
    for (int64_t i = 0; i < l * s; ++i) scores[i] *= scale;
    if (mask != nullptr) {
      const int r = static_cast<int>(mask->shape.size());
      int64_t moff = 0, rem = b;  // batch offset over the mask's leading (broadcast) dims
      for (int d = r - 3; d >= 0; --d) {
        moff += (rem % mask->shape[d]) * mask->strides[d];
        rem /= mask->shape[d];
      }
      for (int64_t i = 0; i < l; ++i) {
        const float* mrow = mask->data + moff + i * mask->strides[r - 2];
        for (int64_t j = 0; j < s; ++j) scores[i * s + j] += mrow[j * mask->strides[r - 1]];
      }
    }
    Softmax(scores, {l, s}, 1, probs);
    Gemm(l, ev, s, MatRef{probs, s, 1}, MatRef{v + b * s * ev, ev, 1},
         MatOut{out + b * l * ev, ev, 1}, false);
  }
}

}  // namespace anerd::backend::cpu
