#include "common/synth_stories.h"

#include <string>

namespace anerd {
namespace {

const char* const kNames[] = {"Lily", "Tom",  "Mia", "Ben",  "Sue",
                              "Max",  "Anna", "Sam", "Lucy", "Tim"};
const char* const kAnimals[] = {"cat", "dog", "bird", "bunny", "fox", "frog", "duck", "bear"};
const char* const kAdjectives[] = {"little", "happy", "small", "brave",
                                   "kind",   "silly", "shy",   "big"};
const char* const kPlaces[] = {"park",  "garden", "forest", "house",
                               "river", "school", "farm",   "hill"};
const char* const kObjects[] = {"ball", "box", "flower", "hat", "kite", "cake", "book", "stone"};
const char* const kColors[] = {"red", "blue", "green", "yellow", "shiny", "soft", "pink", "old"};
const char* const kActivities[] = {"play", "run", "jump", "sing", "dance", "read", "swim", "draw"};
const char* const kFeelings[] = {"happy",   "sad",    "scared",   "proud",
                                 "excited", "sleepy", "surprised"};

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t x = (state_ += 0x9E3779B97F4A7C15ull);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
  }
  template <size_t N>
  const char* Pick(const char* const (&words)[N]) {
    return words[Next() % N];
  }

 private:
  uint64_t state_;
};

std::string Story(Rng& r) {
  const std::string name = r.Pick(kNames), friend_name = r.Pick(kNames);
  const std::string animal = r.Pick(kAnimals), place = r.Pick(kPlaces);
  const std::string object = r.Pick(kObjects), color = r.Pick(kColors);
  std::string s = "Once upon a time, there was a " + std::string(r.Pick(kAdjectives)) + " " +
                  animal + " named " + name + ". " + name + " liked to " + r.Pick(kActivities) +
                  " in the " + place + ".";
  const int events = 1 + static_cast<int>(r.Next() % 3);
  for (int i = 0; i < events; ++i) {
    switch (r.Next() % 4) {
      case 0:
        s += " One day, " + name + " found a " + color + " " + object + " in the " + place + ".";
        break;
      case 1:
        s += " " + name + " met a friend named " + friend_name + ". They wanted to " +
             r.Pick(kActivities) + " together.";
        break;
      case 2:
        s +=
            " " + name + " felt " + r.Pick(kFeelings) + " and went to the " + r.Pick(kPlaces) + ".";
        break;
      default:
        s += " \"Can I have the " + object + "?\" asked " + friend_name +
             ". \"Yes, you can!\" said " + name + ".";
        break;
    }
  }
  s += " At the end of the day, " + name + " was " + r.Pick(kFeelings) + ". The end.\n\n";
  return s;
}

}  // namespace

std::string SynthesizeStories(uint64_t seed, size_t bytes) {
  Rng rng(seed);
  std::string out;
  out.reserve(bytes + 512);
  while (out.size() < bytes) out += Story(rng);
  out.resize(bytes);
  return out;
}

}  // namespace anerd
