// The catalog of built-in jobs: lookup by name and the checks a SUBMIT gets before it is queued.
#include <algorithm>

#include "server/engine/builtin_jobs.hpp"
#include "server/engine/input_kinds.hpp"
#include "server/engine/job_kind.hpp"
#include "server/engine/plugin_jobs.hpp"

namespace mrd::engine {
namespace {

/// The jobs a SUBMIT may name.
std::vector<const JobKind*> submittable(bool allow_test_jobs) {
  auto kinds = all_job_kinds();
  kinds.insert(kinds.end(), plugin_job_kinds().begin(), plugin_job_kinds().end());
  if (allow_test_jobs) {
    kinds.insert(kinds.end(), test_job_kinds().begin(), test_job_kinds().end());
  }
  return kinds;
}

/// The first job among `kinds` whose mapper (or reducer) has this name, or nullptr.
const JobKind* with_mapper(const std::vector<const JobKind*>& kinds, std::string_view name) {
  for (const JobKind* kind : kinds) {
    if (kind->mapper() == name) return kind;
  }
  return nullptr;
}
const JobKind* with_reducer(const std::vector<const JobKind*>& kinds, std::string_view name) {
  for (const JobKind* kind : kinds) {
    if (kind->reducer() == name) return kind;
  }
  return nullptr;
}

/// "'a', 'b', 'c'", without repeats (two mappers share the reducer 'sum').
template <class Name>
std::string quoted_list(const std::vector<const JobKind*>& kinds, Name name) {
  std::vector<std::string_view> seen;
  std::string list;
  for (const JobKind* kind : kinds) {
    const std::string_view n = name(*kind);
    if (std::find(seen.begin(), seen.end(), n) != seen.end()) continue;
    seen.push_back(n);
    if (!list.empty()) list += ", ";
    list += '\'';
    list += n;
    list += '\'';
  }
  return list;
}

}  // namespace

const std::vector<const JobKind*>& all_job_kinds() {
  static const std::vector<const JobKind*> kinds = {
      &word_count_job(), &bigram_count_job(),    &inverted_index_job(),
      &statistics_job(), &matrix_multiply_job(),
  };
  return kinds;
}

bool is_builtin(const JobKind& kind) {
  const auto& builtin = all_job_kinds();
  return std::find(builtin.begin(), builtin.end(), &kind) != builtin.end();
}

const JobKind* find_job_kind(std::string_view mapper, std::string_view reducer) {
  for (const auto* kinds : {&all_job_kinds(), &plugin_job_kinds(), &test_job_kinds()}) {
    for (const JobKind* kind : *kinds) {
      if (kind->mapper() == mapper && kind->reducer() == reducer) return kind;
    }
  }
  return nullptr;
}

std::string check_submit(std::string_view mapper, std::string_view reducer, std::size_t input_kind,
                         bool allow_test_jobs) {
  const auto kinds = submittable(allow_test_jobs);
  const JobKind* by_mapper = with_mapper(kinds, mapper);
  if (by_mapper == nullptr) {
    return "unknown mapper '" + std::string(mapper) +
           "'; known mappers: " + quoted_list(kinds, [](const JobKind& k) { return k.mapper(); });
  }
  if (with_reducer(kinds, reducer) == nullptr) {
    return "unknown reducer '" + std::string(reducer) +
           "'; known reducers: " + quoted_list(kinds, [](const JobKind& k) { return k.reducer(); });
  }
  const JobKind* kind = find_job_kind(mapper, reducer);
  if (kind == nullptr) {
    // Each mapper goes with exactly one reducer, so the fix is always a single name.
    return "mapper '" + std::string(mapper) + "' does not go with reducer '" +
           std::string(reducer) + "'; use '" + std::string(by_mapper->reducer()) + "'";
  }
  if (input_kind != kind->input_kind()) {
    return wrong_input_message(kind->mapper(), kind->input_kind(), input_kind);
  }
  return {};
}

std::string check_submit(const protocol::SubmitRequest& request, bool allow_test_jobs) {
  return check_submit(request.mapper, request.reducer, request.input.index(), allow_test_jobs);
}

}  // namespace mrd::engine
