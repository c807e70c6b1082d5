#include "common/tokenizer/bpe_merge.h"

#include <queue>

namespace anerd::tokenizer {
namespace {

struct Candidate {
  double priority;
  int32_t pos;  // index of the left symbol in the original sequence
  int32_t left;
  int32_t right;
  int32_t merged;
};

// std::priority_queue pops the "largest": make that the smallest priority, then leftmost.
struct Worse {
  bool operator()(const Candidate& a, const Candidate& b) const {
    if (a.priority != b.priority) return a.priority > b.priority;
    return a.pos > b.pos;
  }
};

}  // namespace

void MergePairs(std::vector<int32_t>* symbols, PairLookup lookup) {
  std::vector<int32_t>& s = *symbols;
  const int32_t n = static_cast<int32_t>(s.size());
  if (n < 2) return;
  std::vector<int32_t> next(n), prev(n);
  std::vector<bool> alive(n, true);
  for (int32_t i = 0; i < n; ++i) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  std::priority_queue<Candidate, std::vector<Candidate>, Worse> heap;
  auto consider = [&](int32_t pos) {
    if (pos < 0 || next[pos] < 0) return;
    Candidate c{0.0, pos, s[pos], s[next[pos]], 0};
    if (lookup(c.left, c.right, &c.priority, &c.merged)) heap.push(c);
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    const int32_t right = next[c.pos];
    if (!alive[c.pos] || right < 0 || s[c.pos] != c.left || s[right] != c.right) continue;
    s[c.pos] = c.merged;
    alive[right] = false;
    next[c.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = c.pos;
    consider(prev[c.pos]);
    consider(c.pos);
  }
  int32_t out = 0;
  for (int32_t i = 0; i < n; ++i) {
    if (alive[i]) s[out++] = s[i];
  }
  s.resize(out);
}

}  // namespace anerd::tokenizer
