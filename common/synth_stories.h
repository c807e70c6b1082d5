// A synthetic corpus of short children's stories from a small fixed grammar (names, animals,
// places, objects, feelings and a handful of sentence templates), so demos and tests can train a
// model without downloading data. Output is ASCII (valid UTF-8), paragraphs separated by a blank
// line, deterministic in `seed` (same bytes on every platform), exactly `bytes` long (the last
// story is cut). Thread-safety: pure function.
#ifndef ANERD_COMMON_SYNTH_STORIES_H_
#define ANERD_COMMON_SYNTH_STORIES_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace anerd {

std::string SynthesizeStories(uint64_t seed, size_t bytes);

}  // namespace anerd

#endif  // ANERD_COMMON_SYNTH_STORIES_H_
