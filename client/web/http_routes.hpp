// The HTTP routes of mrd-web (docs/http.md): the job API, the course routes, /metrics, /healthz
// and /api/stats, and the page's files (page_assets.hpp). Each route opens its own connection to
// mrd (MrdServers) and turns mrd's answer, or what went wrong reaching it, into an HTTP status
// and a JSON body.
#pragma once

#include <cstdint>

namespace httplib {
class Server;
}

namespace mrd::web {

class MrdServers;

/// Adds every route, JSON bodies for the errors cpp-httplib answers itself (404, 413), and a
/// Date header on every answer.
/// `max_body_bytes` is only for the 413's message.
void add_routes(httplib::Server& http, const MrdServers& servers, std::uint64_t max_body_bytes);

}  // namespace mrd::web
