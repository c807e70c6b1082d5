// The dashboard's page, script and style sheet, compiled into anerd: CMake turns the files of
// server/ui/assets/ into the generated ui_assets.cc at build time (cmake/embed_assets.cmake), so
// nothing is downloaded at build or run time.
//
// Thread-safety: immutable data.
#ifndef ANERD_SERVER_UI_UI_ASSETS_H_
#define ANERD_SERVER_UI_UI_ASSETS_H_

#include "absl/strings/string_view.h"

namespace anerd::ui {

struct UiAsset {
  absl::string_view path;          // "/index.html", "/app.js", ...
  absl::string_view content_type;  // "text/html; charset=utf-8", ...
  absl::string_view data;
};

// The asset served at `path`, or nullptr.
const UiAsset* FindUiAsset(absl::string_view path);

}  // namespace anerd::ui

#endif  // ANERD_SERVER_UI_UI_ASSETS_H_
