// JobScope: whose jobs a request may see and change. A server without tokens has one user, who
// sees every job; with tokens a `user` sees its tenant's jobs and an `admin` every job. A job out
// of scope is answered exactly as a job that does not exist, so that ids cannot be probed.
#pragma once

#include <string>
#include <string_view>

namespace mrd::server {

struct JobScope {
  bool everyone = true;     ///< no tokens, or an admin token
  std::string_view tenant;  ///< otherwise: the only tenant whose jobs are in scope

  bool includes(std::string_view owner) const { return everyone || owner == tenant; }
};

}  // namespace mrd::server
