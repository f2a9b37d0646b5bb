// mrctl: the command-line client of mrd. Parses the command line, runs one command, and turns
// what went wrong into a message on stderr and a documented exit code (exit_codes.hpp).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "client/client_error.hpp"
#include "client/mrctl/admin_commands.hpp"
#include "client/mrctl/exit_codes.hpp"
#include "client/mrctl/job_commands.hpp"
#include "client/mrctl/options.hpp"

int main(int argc, char** argv) {
  using namespace mrd::mrctl;

  CLI::App app("mrctl: submit MapReduce jobs to an mrd server, and ask it about them.", "mrctl");
  // Set before the commands are added, which inherit these settings.
  app.option_defaults()->always_capture_default();
  app.fallthrough();  // global options may follow the command name too
  app.footer(kExitCodesHelp);
  app.set_version_flag("--version", "mrctl " MRD_VERSION);
  app.require_subcommand(1);

  GlobalOptions global;
  Runner run;
  add_global_options(app, global);
  add_job_commands(app, global, run);
  add_admin_commands(app, global, run);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Help and --version are "errors" with exit code 0; every other is a usage error.
    return app.exit(e) == 0 ? kExitSuccess : kExitUsage;
  }

  try {
    return run();
  } catch (const mrd::client::ClientError& e) {
    std::fprintf(stderr, "mrctl: %s\n", e.what());
    return exit_code_for(e.kind());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mrctl: internal error: %s\n", e.what());
    return kExitInternal;
  }
}
