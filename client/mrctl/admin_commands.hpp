// The commands that ask about jobs and the server: status, result, cancel, list, server-stats.
#pragma once

#include <CLI/CLI.hpp>

#include "client/mrctl/options.hpp"

namespace mrd::mrctl {

/// Adds the query commands to `app`; the one chosen on the command line sets `run`.
void add_admin_commands(CLI::App& app, const GlobalOptions& global, Runner& run);

}  // namespace mrd::mrctl
