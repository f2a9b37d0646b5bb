#include "server/engine/plugin_jobs.hpp"

#include <dlfcn.h>

#include <memory>
#include <stdexcept>

#include "server/engine/counts_job.hpp"
#include "server/engine/input_kinds.hpp"
#include "server/sdk/mrd_plugin.h"

namespace mrd::engine {
namespace {

/// A counts job whose mapper and combine function live in a plugin.
class PluginJob final : public CountsJob {
 public:
  explicit PluginJob(const mrd_plugin_job& job) : job_(job) {}

  std::string_view mapper() const override { return job_.mapper; }
  std::string_view reducer() const override { return job_.reducer; }
  std::uint64_t combine(std::uint64_t a, std::uint64_t b) const override {
    return job_.combine(a, b);
  }

 protected:
  void count_keys(const DocumentsView& chunk, CountTable& counts) const override {
    struct Sink {
      const PluginJob* job;
      CountTable* counts;
    } sink{this, &counts};
    // The plugin calls back with each pair: combine it into the chunk's table at once.
    const mrd_emit_fn emit = [](void* context, const char* key, size_t key_size, uint64_t value) {
      auto* s = static_cast<Sink*>(context);
      auto& total = (*s->counts)[std::string_view(key, key_size)];
      total = s->job->combine(total, value);
    };
    char error[512] = {};
    for (const auto& document : chunk.documents) {
      if (job_.map(document.name.data(), document.name.size(), document.text.data(),
                   document.text.size(), emit, &sink, error, sizeof error - 1) != 0) {
        throw JobError(std::string(job_.mapper) + ": " +
                       (error[0] ? error : "the mapper failed without a message"));
      }
    }
  }

 private:
  const mrd_plugin_job& job_;
};

std::vector<std::unique_ptr<PluginJob>>& owned_jobs() {
  static std::vector<std::unique_ptr<PluginJob>> jobs;
  return jobs;
}

std::vector<const JobKind*>& registered() {
  static std::vector<const JobKind*> kinds;
  return kinds;
}

bool mapper_taken(std::string_view mapper) {
  for (const auto* kinds : {&all_job_kinds(), &test_job_kinds(), &plugin_job_kinds()}) {
    for (const JobKind* kind : *kinds) {
      if (kind->mapper() == mapper) return true;
    }
  }
  return false;
}

}  // namespace

void load_plugin(const std::string& path) {
  // RTLD_NOW: a missing symbol is an error now, at start-up, not a crash in the middle of a job.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) throw std::runtime_error("cannot load plugin " + path + ": " + dlerror());
  const auto version =
      reinterpret_cast<mrd_plugin_sdk_version_fn>(dlsym(handle, MRD_PLUGIN_SDK_VERSION_SYMBOL));
  const auto jobs = reinterpret_cast<mrd_plugin_jobs_fn>(dlsym(handle, MRD_PLUGIN_JOBS_SYMBOL));
  if (!version || !jobs) {
    throw std::runtime_error("plugin " + path + " does not export " +
                             MRD_PLUGIN_SDK_VERSION_SYMBOL + " and " + MRD_PLUGIN_JOBS_SYMBOL +
                             " (was it built with server/sdk/mrd_plugin.h?)");
  }
  if (version() != MRD_PLUGIN_SDK_VERSION) {
    throw std::runtime_error("plugin " + path + " was built for SDK version " +
                             std::to_string(version()) + "; this mrd loads version " +
                             std::to_string(MRD_PLUGIN_SDK_VERSION));
  }
  size_t count = 0;
  const mrd_plugin_job* list = jobs(&count);
  if (count == 0 || !list) throw std::runtime_error("plugin " + path + " has no jobs");
  for (size_t i = 0; i < count; ++i) {
    const auto& job = list[i];
    if (!job.mapper || !job.reducer || !job.map || !job.combine) {
      throw std::runtime_error("plugin " + path + ": job " + std::to_string(i + 1) +
                               " lacks a name, a map or a combine function");
    }
    const std::string_view mapper = job.mapper, reducer = job.reducer;
    if (mapper.empty() || mapper.size() > 64 || reducer.empty() || reducer.size() > 64) {
      throw std::runtime_error("plugin " + path + ": names must be 1 to 64 bytes");
    }
    if (mapper_taken(mapper)) {
      throw std::runtime_error("plugin " + path + ": mapper '" + std::string(mapper) +
                               "' is already taken");
    }
    owned_jobs().push_back(std::make_unique<PluginJob>(job));
    registered().push_back(owned_jobs().back().get());
  }
  // The handle stays open for the life of the process: the jobs point into it.
}

const std::vector<const JobKind*>& plugin_job_kinds() {
  return registered();
}

}  // namespace mrd::engine
