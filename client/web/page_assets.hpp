// The dashboard page (docs/http.md, "The page"): the files of client/web/page/, built into
// mrd-web (embed_page.cmake) and served by it, so that the page needs nothing but mrd-web.
#pragma once

#include <span>
#include <string_view>

namespace httplib {
class Server;
}

namespace mrd::web {

/// One file of the page, as it was in client/web/page/ at build time.
struct PageFile {
  std::string_view name;  ///< its file name: "index.html", "page.js", ...
  std::string_view body;  ///< its bytes
};

/// Every file of the page (defined in the page_files.cpp that embed_page.cmake writes).
std::span<const PageFile> page_files();

/// The HTTP Content-Type for a page file's name ("text/css; charset=utf-8" for "page.css").
/// Throws std::invalid_argument for an extension the page has no use for.
std::string_view page_content_type(std::string_view name);

/// GET / for index.html, and GET /NAME for each other file, never cached without asking again
/// (Cache-Control: no-cache), under a Content-Security-Policy that lets the page load nothing
/// but mrd-web's own files.
void add_page_routes(httplib::Server& http);

}  // namespace mrd::web
