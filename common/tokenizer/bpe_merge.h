// The merge loop shared by the BPE tokenizers: repeatedly merge the adjacent pair with the best
// (smallest) priority, the leftmost one among equals, until no pair merges. This is llama2.c's
// encode loop (priority = −score, its scan keeps the first best) and Hugging Face's BPE word merge
// (priority = merge rank, ties by position), done with a heap and a linked list in O(n log n)
// instead of their O(n²) rescans, with the same result.
// Thread-safety: a pure function.
#ifndef ANERD_COMMON_TOKENIZER_BPE_MERGE_H_
#define ANERD_COMMON_TOKENIZER_BPE_MERGE_H_

#include <cstdint>
#include <vector>

#include "absl/functional/function_ref.h"

namespace anerd::tokenizer {

// Returns true and sets *priority and *merged when (left, right) merges into id *merged.
// Must be a pure function of (left, right).
using PairLookup =
    absl::FunctionRef<bool(int32_t left, int32_t right, double* priority, int32_t* merged)>;

// Merges `symbols` in place as described above.
void MergePairs(std::vector<int32_t>* symbols, PairLookup lookup);

}  // namespace anerd::tokenizer

#endif  // ANERD_COMMON_TOKENIZER_BPE_MERGE_H_
