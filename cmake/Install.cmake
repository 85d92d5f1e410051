# Install.cmake - what `cmake --install` puts in a prefix, and the .deb.
#
#   bin/normc                          the compiler
#   lib/libnormrt.a                    the runtime
#   lib/libnormrt_mpi.a                SyncBatchNorm's allreduce hook on MPI
#                                      (link it with your MPI; not exported)
#   include/normrt/*.h, normrt.hpp     its C ABI, C++ wrapper, module table,
#                                      the kind table (C++)
#   lib/cmake/normc/                   find_package(normc CONFIG)
#   lib/pkgconfig/normc.pc             pkg-config --cflags --libs normc
#   share/normc/python/normrt/         the Python package (normrt, normrt.torch)
#   share/normc/examples/              examples/torch_resnet.py
#   share/doc/normc/                   README and docs/
include(CMakePackageConfigHelpers)

set(NORMC_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/normc)

install(TARGETS normc EXPORT normcTargets
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS normrt EXPORT normcTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS normrt_mpi ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES runtime/mpi/normrt_mpi.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/normrt)
install(FILES runtime/include/normrt/normrt.h runtime/include/normrt/normrt.hpp
              runtime/include/normrt/module.h
              runtime/include/normrt/cpu_features.h
              runtime/include/normrt/kinds.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/normrt)
install(EXPORT normcTargets NAMESPACE normc:: DESTINATION ${NORMC_CMAKE_DIR})

configure_package_config_file(cmake/normcConfig.cmake.in
  ${PROJECT_BINARY_DIR}/normcConfig.cmake
  INSTALL_DESTINATION ${NORMC_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/normcConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/normcConfig.cmake
              ${PROJECT_BINARY_DIR}/normcConfigVersion.cmake
              cmake/NormcModule.cmake
        DESTINATION ${NORMC_CMAKE_DIR})

# pkg-config: the prefix is the one given at install time.
install(CODE "
  set(CMAKE_INSTALL_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  set(CMAKE_INSTALL_LIBDIR \"${CMAKE_INSTALL_LIBDIR}\")
  set(CMAKE_INSTALL_INCLUDEDIR \"${CMAKE_INSTALL_INCLUDEDIR}\")
  set(CMAKE_INSTALL_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
  set(PROJECT_VERSION \"${PROJECT_VERSION}\")
  configure_file(\"${PROJECT_SOURCE_DIR}/cmake/normc.pc.in\"
                 \"${PROJECT_BINARY_DIR}/normc.pc.install\" @ONLY)
  file(INSTALL \"${PROJECT_BINARY_DIR}/normc.pc.install\"
       DESTINATION \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig\"
       RENAME normc.pc)
")

install(DIRECTORY runtime/python/normrt
        DESTINATION ${CMAKE_INSTALL_DATADIR}/normc/python
        FILES_MATCHING PATTERN "*.py" PATTERN "__pycache__" EXCLUDE)
install(FILES examples/torch_resnet.py
        DESTINATION ${CMAKE_INSTALL_DATADIR}/normc/examples)
install(FILES README.md docs/design.md docs/dsl.md docs/runtime.md docs/python.md
              docs/performance.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

# ---- CPack: a .deb ---------------------------------------------------------
set(CPACK_PACKAGE_NAME normc)
set(CPACK_PACKAGE_VENDOR "normc")
set(CPACK_PACKAGE_CONTACT "normc developers <normc@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "Ahead-of-time compiler for normalization layers (Halide, MLIR)")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
# dpkg-shlibdeps finds the versions of the shared libraries normc links;
# LLVM's and MLIR's are also named here, since they are found through normc's
# RPATH (/usr/lib/llvm-14/lib), which dpkg-shlibdeps does not always map to
# their packages. normc runs a C++ linker driver for --shared.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "libllvm14, libmlir-14, g++ | clang, binutils")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "python3, pkg-config, cmake")
include(CPack)
