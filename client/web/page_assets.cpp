#include "client/web/page_assets.hpp"

#include <httplib.h>

#include <stdexcept>
#include <string>

namespace mrd::web {

namespace {

/// Scripts, styles, images and requests from mrd-web alone (the page works offline, and an
/// injected script could not phone home); no inline script; never inside another site's frame
/// (whose clicks could cancel jobs).
constexpr const char* kContentSecurityPolicy =
    "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'";

}  // namespace

std::string_view page_content_type(std::string_view name) {
  if (name.ends_with(".html")) return "text/html; charset=utf-8";
  if (name.ends_with(".js")) return "text/javascript; charset=utf-8";
  if (name.ends_with(".css")) return "text/css; charset=utf-8";
  if (name.ends_with(".svg")) return "image/svg+xml";
  throw std::invalid_argument("page file " + std::string(name) + ": no Content-Type known");
}

void add_page_routes(httplib::Server& http) {
  for (const PageFile& file : page_files()) {
    // cpp-httplib's paths are regular expressions: the name's dots are escaped.
    std::string path = "/";
    if (file.name != "index.html") {
      for (const char c : file.name)
        path += c == '.' ? std::string("\\.") : std::string(1, c);
    }
    const std::string_view type = page_content_type(file.name);
    http.Get(path, [file, type](const httplib::Request&, httplib::Response& response) {
      // no-cache: the browser may keep a copy but asks again each time, so a new mrd-web's page
      // is never mixed with an old one's script.
      response.set_header("Cache-Control", "no-cache");
      response.set_header("X-Content-Type-Options", "nosniff");
      response.set_header("Content-Security-Policy", kContentSecurityPolicy);
      response.set_header("Referrer-Policy", "no-referrer");
      response.set_content(file.body.data(), file.body.size(), std::string(type));
    });
  }
}

}  // namespace mrd::web
