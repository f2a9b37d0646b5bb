#include "client/mrctl/admin_commands.hpp"

#include <memory>

#include "client/json_output.hpp"
#include "client/mrctl/exit_codes.hpp"
#include "client/mrctl/session.hpp"
#include "client/text_output.hpp"

namespace mrd::mrctl {
namespace {

/// A command about one job.
struct JobCommand {
  std::uint32_t job_id = 0;
  bool wait = false;  ///< result: poll until the job has finished
  OutputOptions output;
};

CLI::App* add_job_command(CLI::App& app, const std::string& name, const std::string& description,
                          JobCommand& options) {
  auto* command = app.add_subcommand(name, description);
  command->add_option("ID", options.job_id, "Job id, as printed by --no-wait or `mrctl list`")
      ->required();
  return command;
}

void add_status_command(CLI::App& app, const GlobalOptions& global, Runner& run) {
  auto options = std::make_shared<JobCommand>();
  auto* command = add_job_command(
      app, "status", "Print a job's state, progress, what it is and when each step happened",
      *options);
  add_output_options(*command, options->output, false);
  command->callback([&global, &run, options] {
    run = [&global, options] {
      const auto details = open_servers(global).details(options->job_id);
      print(options->output.json ? client::job_details_json(details)
                                 : client::job_details_text(details));
      return kExitSuccess;
    };
  });
}

void add_result_command(CLI::App& app, const GlobalOptions& global, Runner& run) {
  auto options = std::make_shared<JobCommand>();
  auto* command = add_job_command(
      app, "result",
      "Print a job's result. If it has not finished, print its progress and exit 6, or with "
      "--wait wait for it",
      *options);
  command->add_flag("--wait", options->wait, "Wait until the job has finished");
  add_output_options(*command, options->output, true);
  command->callback([&global, &run, options] {
    run = [&global, options] {
      auto servers = open_servers(global);
      auto outcome = options->wait ? wait_with_progress(servers, options->job_id, global)
                                   : servers.fetch(options->job_id);
      if (!outcome.finished()) {
        print(options->output.json ? client::job_status_json(*outcome.progress)
                                   : client::job_status_text(*outcome.progress));
        return kExitNotFinished;
      }
      const auto result = client::result_or_throw(std::move(outcome), options->job_id);
      print(options->output.json ? client::result_json(result, options->output.entries())
                                 : client::result_text(result, options->output.entries()));
      return kExitSuccess;
    };
  });
}

void add_cancel_command(CLI::App& app, const GlobalOptions& global, Runner& run) {
  auto options = std::make_shared<JobCommand>();
  auto* command = add_job_command(app, "cancel", "Cancel a job; the server forgets it", *options);
  command->callback([&global, &run, options] {
    run = [&global, options] {
      open_servers(global).cancel(options->job_id);
      return kExitSuccess;
    };
  });
}

void add_list_command(CLI::App& app, const GlobalOptions& global, Runner& run) {
  auto options = std::make_shared<OutputOptions>();
  auto* command =
      app.add_subcommand("list",
                         "List the jobs the server remembers, with their state; with tokens, "
                         "your tenant's jobs (an admin token: everyone's, with their tenant)");
  add_output_options(*command, *options, false);
  command->callback([&global, &run, options] {
    run = [&global, options] {
      const auto list = open_servers(global).list();
      print(options->json ? client::job_list_json(list) : client::job_list_text(list));
      return kExitSuccess;
    };
  });
}

void add_server_stats_command(CLI::App& app, const GlobalOptions& global, Runner& run) {
  auto options = std::make_shared<OutputOptions>();
  auto* command = app.add_subcommand("server-stats", "Print the server's counters, one per line");
  add_output_options(*command, *options, false);
  command->callback([&global, &run, options] {
    run = [&global, options] {
      const auto stats = open_servers(global).detailed_stats();
      print(options->json ? client::detailed_stats_json(stats)
                          : client::detailed_stats_text(stats));
      return kExitSuccess;
    };
  });
}

}  // namespace

void add_admin_commands(CLI::App& app, const GlobalOptions& global, Runner& run) {
  add_status_command(app, global, run);
  add_result_command(app, global, run);
  add_cancel_command(app, global, run);
  add_list_command(app, global, run);
  add_server_stats_command(app, global, run);
}

}  // namespace mrd::mrctl
