# `make install` (cmake --install, PREFIX and DESTDIR honoured) and `make package`
# (CPack, a Debian package). Paths follow the FHS: with the prefix /usr the
# settings go to /etc/vmlab, with another prefix to PREFIX/etc/vmlab, and the
# systemd unit names the vmlab and settings it was installed with.
include(GNUInstallDirs)

install(TARGETS vmlab RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES crds/labcluster.yaml DESTINATION ${CMAKE_INSTALL_DATADIR}/vmlab/crds)
install(FILES examples/minimal.yaml examples/spk-lab.yaml
        DESTINATION ${CMAKE_INSTALL_DATADIR}/vmlab/examples)
install(FILES deploy/prometheus/prometheus.yml deploy/prometheus/alerts.yml
              deploy/prometheus/alerts_test.yml
        DESTINATION ${CMAKE_INSTALL_DATADIR}/vmlab/prometheus)
install(DIRECTORY deploy/grafana/dashboards deploy/grafana/provisioning
        DESTINATION ${CMAKE_INSTALL_DATADIR}/vmlab/grafana)
install(FILES README.md docs/api.md docs/cli.md docs/deploy.md docs/manifest.md docs/metrics.md
              docs/operations.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

# Decided at install time, when the prefix is known (cmake --install --prefix,
# CPack's /usr): the settings file, the (empty) watch folder and the unit.
install(CODE "set(VMLAB_SOURCE_DIR \"${PROJECT_SOURCE_DIR}\")\nset(VMLAB_BINARY_DIR \"${PROJECT_BINARY_DIR}\")")
install(CODE [[
  if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
    set(vmlab_etc "/etc/vmlab")
  else()
    set(vmlab_etc "${CMAKE_INSTALL_PREFIX}/etc/vmlab")
  endif()
  file(READ "${VMLAB_SOURCE_DIR}/deploy/vmlab/controller.yaml" settings)
  string(REPLACE "/etc/vmlab/" "${vmlab_etc}/" settings "${settings}")
  set(settings_file "${VMLAB_BINARY_DIR}/controller.yaml.installed")
  file(WRITE "${settings_file}" "${settings}")
  # Settings a user may have edited are kept; the shipped ones go beside them.
  if(EXISTS "$ENV{DESTDIR}${vmlab_etc}/controller.yaml")
    file(READ "$ENV{DESTDIR}${vmlab_etc}/controller.yaml" current)
    if(NOT current STREQUAL settings)
      message(STATUS "Keeping: $ENV{DESTDIR}${vmlab_etc}/controller.yaml (edited); "
                     "the shipped settings are controller.yaml.dist beside it")
      file(INSTALL DESTINATION "${vmlab_etc}" TYPE FILE FILES "${settings_file}"
           RENAME controller.yaml.dist)
    endif()
  else()
    file(INSTALL DESTINATION "${vmlab_etc}" TYPE FILE FILES "${settings_file}"
         RENAME controller.yaml)
  endif()
  file(MAKE_DIRECTORY "$ENV{DESTDIR}${vmlab_etc}/labs")
  file(READ "${VMLAB_SOURCE_DIR}/deploy/systemd/vmlab.service" unit)
  string(REPLACE "/usr/bin/vmlab" "${CMAKE_INSTALL_PREFIX}/bin/vmlab" unit "${unit}")
  string(REPLACE "/etc/vmlab/" "${vmlab_etc}/" unit "${unit}")
  string(REPLACE "/usr/share/doc/vmlab/" "${CMAKE_INSTALL_PREFIX}/share/doc/vmlab/" unit "${unit}")
  set(unit_file "${VMLAB_BINARY_DIR}/vmlab.service.installed")
  file(WRITE "${unit_file}" "${unit}")
  file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system" TYPE FILE
       FILES "${unit_file}" RENAME vmlab.service)
]])

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME vmlab)
set(CPACK_PACKAGE_VENDOR "vmlab")
set(CPACK_PACKAGE_CONTACT "vmlab maintainers <vmlab@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "Kubernetes labs on libvirt VMs from LabCluster manifests, kept as declared")
set(CPACK_PACKAGE_DESCRIPTION
    "vmlab watches a folder of LabCluster manifests and creates, repairs, scales and deletes
 Kubernetes labs on libvirt VMs accordingly, with package and image caches on each lab
 network and Prometheus metrics. Ships the systemd unit, the CRD, example manifests,
 Prometheus scrape config and alert rules, and Grafana dashboards.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# Install with DESTDIR and the real prefix, so that the install-time rules above see /usr.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://github.com/vmlab/vmlab")
# Shared libraries from dpkg-shlibdeps; the programs vmlab runs, by name.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "qemu-utils")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS
    "libvirt-daemon-system, qemu-system-x86, apt-cacher-ng, docker-registry")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "prometheus")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    "${PROJECT_SOURCE_DIR}/deploy/debian/conffiles;${PROJECT_SOURCE_DIR}/deploy/debian/postinst;${PROJECT_SOURCE_DIR}/deploy/debian/prerm;${PROJECT_SOURCE_DIR}/deploy/debian/postrm")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
