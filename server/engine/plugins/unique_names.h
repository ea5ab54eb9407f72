// The check the plugins make of a list of named items (graph nodes, hparams):
// every name is given and none twice. Internal to the plugins component.
#ifndef TBLOG_ENGINE_PLUGINS_UNIQUE_NAMES_H_
#define TBLOG_ENGINE_PLUGINS_UNIQUE_NAMES_H_

#include <cstddef>
#include <set>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/status_util.h"

namespace tblog {

// The names seen so far while a list is walked, so that a caller that builds
// output item by item reports the first bad item in list order. The names
// are borrowed: each must outlive this object. A value type, for one thread.
class UniqueNames {
 public:
  // `what` names an item in errors, e.g. "graph node".
  explicit UniqueNames(std::string_view what) : what_(what) {}

  // OK for a non-empty name not seen before; otherwise INVALID_ARGUMENT
  // "<what> <index> has an empty name" or "<what> '<name>' is given twice".
  absl::Status Add(size_t index, std::string_view name) {
    if (name.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(what_, " ", index, " has an empty name"));
    }
    if (!seen_.insert(name).second) {
      return absl::InvalidArgumentError(absl::StrCat(what_, " '", Sv(name), "' is given twice"));
    }
    return absl::OkStatus();
  }

  // Whether Add has accepted `name`.
  bool Contains(std::string_view name) const { return seen_.contains(name); }

 private:
  std::string what_;
  std::set<std::string_view> seen_;
};

}  // namespace tblog

#endif  // TBLOG_ENGINE_PLUGINS_UNIQUE_NAMES_H_
