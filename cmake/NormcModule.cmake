# normc_add_module(<target> SPEC <file.norm> MODULE <name> [SHARED]
#                  [NORMC_ARGS <normc options>...])
#
# Compiles a .norm spec with normc at build time and makes <target> an
# INTERFACE library that carries the generated header's directory, the
# module's static library and the normrt runtime. Linking <target> brings
# everything the module needs, in C and C++ programs alike, whether or not a
# source includes the module's header (the module's layer table is pulled in
# by name). With SHARED, the build also writes lib<name>.so (normrt
# included) for FFI users; its path is in the target property
# NORMC_SHARED_LIBRARY. NORMC_ARGS go to normc as they are (--autoschedule=...
# for the benchmark's baselines).
#
# Works in normc's own build and, through find_package(normc CONFIG), in any
# project: it uses the targets normc::normc (the compiler) and normc::normrt.
function(normc_add_module target)
  cmake_parse_arguments(ARG "SHARED" "SPEC;MODULE" "NORMC_ARGS" ${ARGN})
  if(NOT ARG_SPEC OR NOT ARG_MODULE)
    message(FATAL_ERROR "normc_add_module(${target}): SPEC and MODULE are required")
  endif()
  if(NOT ARG_MODULE MATCHES "^[A-Za-z_][A-Za-z0-9_]*$")
    message(FATAL_ERROR "normc_add_module(${target}): MODULE '${ARG_MODULE}' "
                        "is not a C identifier (letters, digits and '_', not "
                        "starting with a digit)")
  endif()
  get_filename_component(spec "${ARG_SPEC}" ABSOLUTE)
  set(dir "${CMAKE_CURRENT_BINARY_DIR}/${target}.normc")
  set(outputs "${dir}/${ARG_MODULE}.a" "${dir}/${ARG_MODULE}.h")
  set(extra)
  if(ARG_SHARED)
    list(APPEND outputs "${dir}/lib${ARG_MODULE}.so")
    set(extra --shared --runtime-lib $<TARGET_FILE:normc::normrt>)
  endif()
  # NORMC_MODULE_COMPILER names another normc executable to compile specs
  # with (normc's sanitizer build takes the main build's: its kernel cache is
  # warm, and an instrumented compiler is no more correct at making kernels).
  if(NORMC_MODULE_COMPILER)
    set(compiler "${NORMC_MODULE_COMPILER}")
  else()
    set(compiler normc::normc)
  endif()
  add_custom_command(
    OUTPUT ${outputs}
    COMMAND ${compiler} "${spec}" -o "${dir}" --module ${ARG_MODULE} ${extra}
            ${ARG_NORMC_ARGS}
    DEPENDS ${compiler} normc::normrt "${spec}"
    COMMENT "normc ${ARG_MODULE}: ${ARG_SPEC}"
    VERBATIM)
  add_custom_target(${target}_generate DEPENDS ${outputs})
  add_library(${target} INTERFACE)
  add_dependencies(${target} ${target}_generate)
  target_include_directories(${target} INTERFACE "${dir}")
  # The module's table (pulled in by name even when no source includes the
  # header) calls normrt_register_module: the archive comes before normrt.
  target_link_options(${target} INTERFACE
                      "LINKER:--undefined=normc_module_${ARG_MODULE}")
  target_link_libraries(${target} INTERFACE "${dir}/${ARG_MODULE}.a"
                        normc::normrt)
  if(ARG_SHARED)
    set_target_properties(${target} PROPERTIES
      NORMC_SHARED_LIBRARY "${dir}/lib${ARG_MODULE}.so")
  endif()
endfunction()
