# Installing mrd (cmake --install) and, with -DMRD_PACKAGE=ON, the Debian package
# (cpack -G DEB in the build directory; scripts/package.sh builds, checks and tries it).
include(GNUInstallDirs)

install(TARGETS mrd mrctl mrd-web RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/docs/protocol.md
              ${PROJECT_SOURCE_DIR}/docs/http.md ${PROJECT_SOURCE_DIR}/docs/security.md
              ${PROJECT_SOURCE_DIR}/docs/reliability.md ${PROJECT_SOURCE_DIR}/docs/bad-input.md
              ${PROJECT_SOURCE_DIR}/docs/architecture.md ${PROJECT_SOURCE_DIR}/docs/plugins.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${PROJECT_SOURCE_DIR}/client/mrctl/mrctl.bash-completion
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME mrctl)

option(MRD_PACKAGE "Build the man pages and install the system files (systemd units, /etc/default)
  that the Debian package carries" OFF)
if(NOT MRD_PACKAGE)
  return()
endif()

set(debian ${PROJECT_SOURCE_DIR}/scripts/debian)
set(generated ${PROJECT_BINARY_DIR}/debian)
file(MAKE_DIRECTORY ${generated})

# Man pages made from each program's own --help and --version, so that they cannot drift.
find_program(HELP2MAN help2man REQUIRED)
set(man_name_mrd "MapReduce job server")
set(man_name_mrctl "submit MapReduce jobs to an mrd server, and ask it about them")
set(man_name_mrd-web "HTTP, JSON and Prometheus metrics in front of mrd servers")
set(man_pages)
foreach(program mrd mrctl mrd-web)
  set(page ${generated}/${program}.1.gz)
  add_custom_command(
    OUTPUT ${page}
    COMMAND bash ${debian}/man-page.sh $<TARGET_FILE:${program}> "${man_name_${program}}" ${page}
    DEPENDS ${program} ${debian}/man-page.sh
    COMMENT "man page of ${program}"
    VERBATIM)
  list(APPEND man_pages ${page})
endforeach()
add_custom_target(man_pages ALL DEPENDS ${man_pages})
install(FILES ${man_pages} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

# The Python client, as a module of Debian's python3.
install(FILES ${PROJECT_SOURCE_DIR}/client/python/mrd_client.py
        DESTINATION lib/python3/dist-packages)

# What Debian asks of every package: its copyright and a compressed changelog (changelog.gz:
# mrd is its own upstream, a native package).
add_custom_command(
  OUTPUT ${generated}/changelog.gz
  COMMAND gzip -9nc ${debian}/changelog > ${generated}/changelog.gz
  DEPENDS ${debian}/changelog)
add_custom_target(debian_changelog ALL DEPENDS ${generated}/changelog.gz)
install(FILES ${debian}/copyright ${generated}/changelog.gz
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

# The services. Debian 12 keeps units in /lib/systemd/system; the option files are conffiles,
# so an upgrade keeps what the administrator changed.
install(FILES ${debian}/mrd.service ${debian}/mrd-web.service DESTINATION /lib/systemd/system)
install(FILES ${debian}/mrd.default DESTINATION /etc/default RENAME mrd)
install(FILES ${debian}/mrd-web.default DESTINATION /etc/default RENAME mrd-web)
file(WRITE ${generated}/conffiles "/etc/default/mrd\n/etc/default/mrd-web\n")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME mrd)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_PACKAGE_CONTACT "mrd developers <dev@mrd.example.org>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "MapReduce job server with a compact binary protocol")
# The long description; CPack indents it and puts the summary above it.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "mrd runs word counts, inverted indexes, statistics and matrix products as
chunked MapReduce over a pool of worker processes. Clients submit jobs over
TCP (or TLS) and poll for their results; jobs can be kept in SQLite so that
they survive a restart.

The package holds the server (mrd), its command-line client (mrctl), an HTTP,
JSON and Prometheus front-end (mrd-web), a Python client module, systemd
units and the protocol's documentation.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SUGGESTS python3)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${generated}/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_STRIP_FILES ON)
include(CPack)
