// The commands that submit a job: wordcount, bigrams, index, stats, matmul and the generic submit.
#pragma once

#include <CLI/CLI.hpp>

#include "client/mrctl/options.hpp"

namespace mrd::mrctl {

/// Adds the job commands to `app`; the one chosen on the command line sets `run`. Each binds
/// its submit options to `global.submit`, so they may come before or after the command name.
void add_job_commands(CLI::App& app, GlobalOptions& global, Runner& run);

}  // namespace mrd::mrctl
