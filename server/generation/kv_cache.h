// The CPU key/value cache of the program decoder and causal attention against it (issue 20 item
// 2: the cache in fp32 on the CPU, as Orion and maderix/ANE PR #26 keep it).
//
// Layout: two fp32 arrays, keys and values, each [layer][kv_head][max_context][head_dim] —
// element (l, j, p, d) at ((l·KVH + j)·max_context + p)·HD + d — so one KV head's keys over all
// positions are one contiguous [p][HD] matrix. Keys are stored after QK-norm and RoPE. The cache
// knows nothing of which positions are valid: its caller (ProgramDecoder) does.
//
// Activations are channel-major [C][n] over the n positions of a call (as training/cpu_ops.h).
// Attention is run.c's: scores scaled by 1/sqrt(HD), max-subtracted softmax over the visible
// positions, GQA (query head h reads KV head h / (heads / kv_heads)); matrix products on cblas.
// Thread-safety: one thread at a time.
#ifndef ANERD_SERVER_GENERATION_KV_CACHE_H_
#define ANERD_SERVER_GENERATION_KV_CACHE_H_

#include <cstdint>
#include <vector>

#include "server/training/config.h"

namespace anerd::generation {

class KvCache {
 public:
  // Allocates 2·layers·kv_heads·max_context·head_dim floats; the caller bounds that first.
  KvCache(const training::ModelConfig& config, int64_t max_context);

  // Stores k, v [KVD][n] (channel h·HD + d) of layer l at positions [pos, pos + n).
  // Requires pos + n <= max_context().
  void Append(int l, int64_t pos, int64_t n, const float* k, const float* v);
  // out [QD][n] = causal attention of q [QD][n] (positions [pos, pos + n), each seeing the
  // cached positions [0, its own]) over layer l. The keys of [0, pos + n) must be stored.
  void Attend(int l, int64_t pos, int64_t n, const float* q, float* out);

  int64_t max_context() const { return ctx_; }
  int64_t bytes() const { return static_cast<int64_t>(2 * k_.size() * sizeof(float)); }
  // Bytes KvCache(config, max_context) allocates, in double (no overflow for any valid config).
  static double Bytes(const training::ModelConfig& config, int64_t max_context);

 private:
  float* K(int l, int64_t j) { return k_.data() + (l * kvh_ + j) * ctx_ * hd_; }
  float* V(int l, int64_t j) { return v_.data() + (l * kvh_ + j) * ctx_ * hd_; }

  int64_t heads_, kvh_, hd_, ctx_;
  std::vector<float> k_, v_;
  std::vector<float> qt_, scores_, hout_;  // per-call scratch: [n][HD], [n][pos+n], [n][HD]
};

}  // namespace anerd::generation

#endif  // ANERD_SERVER_GENERATION_KV_CACHE_H_
