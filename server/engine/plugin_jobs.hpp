// Jobs from plugins: shared libraries written against server/sdk/mrd_plugin.h and loaded with
// `mrd --plugin FILE.so`. Each plugin job is a counts job whose map and combine come from the
// plugin; everything else (chunking, combining, partitioning, sorting) is CountsJob's.
#pragma once

#include <string>
#include <vector>

#include "server/engine/job_kind.hpp"

namespace mrd::engine {

/// Loads a plugin and adds its jobs to the catalog. Throws std::runtime_error with a message
/// that names the file and the problem (cannot open, missing symbol, SDK version, a name
/// already taken). Call before any thread starts: the catalog is not guarded.
void load_plugin(const std::string& path);

/// Every job loaded from plugins, in load order.
const std::vector<const JobKind*>& plugin_job_kinds();

}  // namespace mrd::engine
