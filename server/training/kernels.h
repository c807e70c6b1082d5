// MIL generators for the dynamic-weight training kernels (docs/ANE_NOTES.md §4.3): ten kernels
// compiled once per model shape and shared by all layers. Weights travel as fp16 activations in the
// input's spatial axis ("slots"), so updating weights never recompiles.
//
// Every kernel has ONE fp16 input `x` of shape [1, C, 1, SP] and ONE fp16 output of shape
// [1, C_out, 1, S], both row-major (element (c, s) at c*SP + s). KernelLayout names every slot.
//
// Staging rule ("dynamic matmul"): a slot of OC spatial columns holding a weight matrix staged as
// Wstaged[i][o] at input (channel i, column offset+o) computes y[o][t] = sum_i
// Wstaged[i][o]·act[i][t]. So y = W·x for a PyTorch-layout W[out][in] stages Wᵀ, and dx = Wᵀ·dy
// stages W as-is.
//
// Layouts (S = seq, D = dim, H = hidden, NH/KVH = heads/kv_heads, HD = head_dim, QD = NH·HD,
// KVD = KVH·HD, SC = NH·S, R = NH/KVH); input slots are spatial [begin, end) unless marked (ch):
//   sdpaFwd    C=D,   SP=S+QD+2KVD: xnorm[0,S) Wqᵀ[S,+QD) Wkᵀ[+KVD) Wvᵀ[+KVD)
//              out 2QD+2KVD+D: attn_out[0,QD) q_rope[QD,2QD) k_rope[+KVD) v[+KVD) xnorm[+D)
//              with qk_norm: SP += 2, slot qk_norm[+2) holds the q-norm weights in column 0 and the
//              k-norm weights in column 1, channels [0,HD) (the rest 0); out += QD+KVD:
//              q_raw[+QD) k_raw[+KVD), the projections before the norm (for the CPU backward)
//   qkvFwd     C=D,   SP=S+QD+2KVD: as sdpaFwd's first four slots         out QD+2KVD: q[0,QD)
//              k[+KVD) v[+KVD), the raw projections (generation: QK-norm, RoPE and attention
//              against the KV cache run on the CPU; not one of the ten training kernels)
//   woFwd      C=QD,  SP=S+D:  attn_out[0,S) Woᵀ[S,S+D)                     out D: o_out
//   ffnFused   C=D,   SP=2S+3H: x2norm[0,S) x2[S,2S) W1ᵀ[2S,+H) W3ᵀ[+H) W2[+H] (W2 as-is, [D][H])
//              out D+3H: x_next[0,D) = x2 + alpha·W2(silu(W1·x2n)⊙W3·x2n), h1[+H) h3[+H) gate[+H)
//   ffnBwdW2t  C=D,   SP=S+H:  dffn[0,S) W2[S,S+H)                          out H: dsilu = W2ᵀ·dffn
//   ffnBwdW13t C=H,   SP=2S+2D: dh1[0,S) dh3[S,2S) W1[2S,+D) W3[+D)         out D: W1ᵀdh1 + W3ᵀdh3
//   wotBwd     C=D,   SP=S+QD: dx2[0,S) Wo[S,S+QD)                          out QD: dA = Woᵀ·dx2
//   sdpaBwd1   C=4QD, SP=S (ch): q_rope[0,QD) k_tiled[QD,2QD) v_tiled[2QD,3QD) dA[3QD,4QD)
//              out QD+2SC: dv_full[0,QD) probs[QD,+SC) dp[+SC)
//   sdpaBwd2   C=2SC+2QD, SP=S (ch): probs[0,SC) dp[SC,2SC) q_rope[2SC,+QD) k_tiled[+QD)
//              out 2QD: dq[0,QD) dk_full[QD,2QD)
//   qBwd       C=QD,  SP=S+D:  dq[0,S) Wq[S,S+D)                            out D: Wqᵀ·dq
//   kvBwd      C=KVD, SP=2S+2D: dk[0,S) dv[S,2S) Wk[2S,+D) Wv[+D)           out D: Wkᵀdk + Wvᵀdv
// Channel index of a head-split tensor is h·HD + d; flattened scores/probs use channel h·S + t
// (query) and spatial t2 (key). GQA: query head h uses KV head h / R (Hugging Face repeat_kv), both
// in sdpaFwd's tiling and in the CPU-tiled k_tiled/v_tiled inputs of sdpaBwd1/2.
// sdpaFwd and sdpaBwd1 read the causal mask (weights/mask.bin, [1,1,S,S], 0 on and below the
// diagonal, -65504 above); sdpaFwd reads the RoPE tables weights/rope_cos.bin and
// weights/rope_sin.bin ([1,1,S,HD], RopeTables of the shape's style and theta). KernelConstants()
// builds those files. QK-norm (per head, over HD, before RoPE) is x·x → reduce_sum → ×1/HD → +eps →
// pow(−0.5) → ×x → ×w, in fp16 like every op (docs/ANE_NOTES.md §3.5: the sum of squares
// overflows fp16 once a head's RMS passes ~22 at HD = 128).
// Attention scale 1/sqrt(HD), the QK-norm eps and 1/HD are fp16 literals.
// Thread-safety: pure functions.
#ifndef ANERD_SERVER_TRAINING_KERNELS_H_
#define ANERD_SERVER_TRAINING_KERNELS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/mil/ir.h"
#include "common/mil/weights.h"

namespace anerd::training {

struct ModelShape {
  int64_t dim = 0;
  int64_t hidden = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t seq = 0;
  int64_t layers = 0;
  int64_t vocab = 0;
  // Architecture variants (ModelConfig, config.h); the defaults generate today's kernels.
  bool rope_half = false;  // rotate (i, i+HD/2) instead of (2i, 2i+1)
  double rope_theta = 10000.0;
  bool qk_norm = false;  // per-head RMSNorm of q and k before RoPE, inside sdpaFwd
  double norm_eps = 1e-5;

  int64_t q_dim() const { return heads * head_dim; }
  int64_t kv_dim() const { return kv_heads * head_dim; }
  int64_t score_channels() const { return heads * seq; }
  int64_t gqa_ratio() const { return heads / kv_heads; }
  // INVALID_ARGUMENT unless every size is positive and bounded (each dim <= 1<<20), head_dim is
  // even, kv_heads divides heads, rope_theta and norm_eps are positive and finite, and (qk_norm)
  // dim >= head_dim.
  absl::Status Validate() const;
};

// One named range of the input's spatial axis (or channel axis, see
// KernelLayout::slots_on_channels) or of the output's channel axis.
struct Block {
  std::string name;
  int64_t offset = 0;
  int64_t size = 0;
};

struct KernelLayout {
  std::string kernel;  // "sdpaFwd", ...
  int64_t in_channels = 0;
  int64_t in_spatial = 0;
  bool slots_on_channels = false;  // sdpaBwd1/2 pack operands along channels
  std::vector<Block> in_slots;
  int64_t out_channels = 0;
  int64_t out_spatial = 0;
  std::vector<Block> out_blocks;  // channel ranges of the output

  int64_t input_bytes() const { return in_channels * in_spatial * 2; }  // fp16
  int64_t output_bytes() const { return out_channels * out_spatial * 2; }
  const Block* FindSlot(absl::string_view name) const;
  const Block* FindOutput(absl::string_view name) const;
};

struct Kernel {
  mil::Program program;
  KernelLayout layout;
};

// Weight-file paths as written in the programs.
inline constexpr char kMaskPath[] = "@model_path/weights/mask.bin";
inline constexpr char kRopeCosPath[] = "@model_path/weights/rope_cos.bin";
inline constexpr char kRopeSinPath[] = "@model_path/weights/rope_sin.bin";

// Causal mask [S][S] (row = query t, column = key t2): 0 if t2 <= t else -65504.
std::vector<float> CausalMask(int64_t seq);
// RoPE tables [S][HD]: pair i turns by angle p / base^(2i/HD) in fp32 (powf). Interleaved: entries
// 2i and 2i+1 both hold cos (resp. sin) of pair i's angle; half: entries i and i+HD/2.
void RopeTables(int64_t seq, int64_t head_dim, double base, bool half, std::vector<float>* cos,
                std::vector<float>* sin);
// Interleaved, base 10000 (llama2.c and the seed).
inline void RopeTables(int64_t seq, int64_t head_dim, std::vector<float>* cos,
                       std::vector<float>* sin) {
  RopeTables(seq, head_dim, 10000.0, false, cos, sin);
}
// mask.bin, rope_cos.bin, rope_sin.bin as one-entry fp16 blob files (BLOBFILE offset 64).
absl::StatusOr<mil::WeightFiles> KernelConstants(const ModelShape& shape);

absl::StatusOr<Kernel> SdpaFwd(const ModelShape& shape);
// sdpaFwd's projections alone (generation, server/generation/decode_programs.h).
absl::StatusOr<Kernel> QkvFwd(const ModelShape& shape);
absl::StatusOr<Kernel> WoFwd(const ModelShape& shape);
// `alpha` scales the FFN branch before the residual add (the dynamic pipeline uses 1/sqrt(2L)).
absl::StatusOr<Kernel> FfnFused(const ModelShape& shape, double alpha = 1.0);
absl::StatusOr<Kernel> FfnBwdW2t(const ModelShape& shape);
absl::StatusOr<Kernel> FfnBwdW13t(const ModelShape& shape);
absl::StatusOr<Kernel> WotBwd(const ModelShape& shape);
absl::StatusOr<Kernel> SdpaBwd1(const ModelShape& shape);
absl::StatusOr<Kernel> SdpaBwd2(const ModelShape& shape);
absl::StatusOr<Kernel> QBwd(const ModelShape& shape);
absl::StatusOr<Kernel> KvBwd(const ModelShape& shape);

// All ten, in the order above.
absl::StatusOr<std::vector<Kernel>> AllKernels(const ModelShape& shape, double ffn_alpha = 1.0);

}  // namespace anerd::training

#endif  // ANERD_SERVER_TRAINING_KERNELS_H_
