# normc_add_module(<target> SPEC <file.norm> MODULE <name> [SHARED]
#                  [NORMC_ARGS <normc options>...])
#
# Compiles a .norm spec with normc at build time and makes <target> an
# INTERFACE library that carries the generated header's directory, the
# module's static library and the normrt runtime. With SHARED, the build also
# writes lib<name>.so (normrt included) for FFI users; its path is in the
# target property NORMC_SHARED_LIBRARY. NORMC_ARGS go to normc as they are
# (--autoschedule=... for the benchmark's baselines).
function(normc_add_module target)
  cmake_parse_arguments(ARG "SHARED" "SPEC;MODULE" "NORMC_ARGS" ${ARGN})
  get_filename_component(spec "${ARG_SPEC}" ABSOLUTE)
  set(dir "${CMAKE_CURRENT_BINARY_DIR}/${target}.normc")
  set(outputs "${dir}/${ARG_MODULE}.a" "${dir}/${ARG_MODULE}.h")
  set(extra)
  if(ARG_SHARED)
    list(APPEND outputs "${dir}/lib${ARG_MODULE}.so")
    set(extra --shared --runtime-lib $<TARGET_FILE:normrt>)
  endif()
  add_custom_command(
    OUTPUT ${outputs}
    COMMAND normc "${spec}" -o "${dir}" --module ${ARG_MODULE} ${extra}
            ${ARG_NORMC_ARGS}
    DEPENDS normc normrt "${spec}"
    COMMENT "normc ${ARG_MODULE}: ${ARG_SPEC}"
    VERBATIM)
  add_custom_target(${target}_generate DEPENDS ${outputs})
  add_library(${target} INTERFACE)
  add_dependencies(${target} ${target}_generate)
  target_include_directories(${target} INTERFACE "${dir}")
  # The module's table calls normrt_register_module, and normrt calls the
  # Halide runtime inside the module: name the archive on both sides.
  target_link_libraries(${target} INTERFACE "${dir}/${ARG_MODULE}.a" normrt
                        "${dir}/${ARG_MODULE}.a" Threads::Threads ${CMAKE_DL_LIBS})
  if(ARG_SHARED)
    set_target_properties(${target} PROPERTIES
      NORMC_SHARED_LIBRARY "${dir}/lib${ARG_MODULE}.so")
  endif()
endfunction()
