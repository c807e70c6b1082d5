#include "common/file_modes.h"

#include <ftw.h>
#include <sys/stat.h>

namespace anerd {
namespace {

// nftw offers no user data pointer; TightenTree serialises its walks.
thread_local int64_t g_changed = 0;

int Tighten(const char* path, const struct stat* st, int type, struct FTW*) {
  mode_t want = 0;
  if (type == FTW_D || type == FTW_DP) {
    want = 0700;
  } else if (type == FTW_F && S_ISREG(st->st_mode)) {
    want = st->st_mode & 0600;
  } else {
    return 0;
  }
  if ((st->st_mode & 07777) != want && ::chmod(path, want) == 0) ++g_changed;
  return 0;  // keep walking
}

}  // namespace

void RestrictUmask() { ::umask(077); }

int64_t TightenTree(const std::string& root) {
  g_changed = 0;
  ::nftw(root.c_str(), Tighten, 16, FTW_PHYS);
  return g_changed;
}

}  // namespace anerd
