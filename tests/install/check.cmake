# The install/consumer test (see tests/CMakeLists.txt), run as
#   cmake -DSRC=<source dir> -DBIN=<build dir> -DGEN=<generator> -P check.cmake
#
# Installs the build tree into a scratch prefix under BIN, then builds and
# runs tests/install/consumer/main.c against that prefix twice:
#   1. as a CMake project: find_package(esc REQUIRED), links esc::esc;
#   2. with the compiler and `pkg-config --cflags --libs esc`.
# When the library was built with sanitizers (ESC_SANITIZE), the consumer is
# built with the same -fsanitize flags, or it would not link.
cmake_minimum_required(VERSION 3.25)

foreach(var SRC BIN GEN)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "install check: -D${var}=... is required")
  endif()
endforeach()

set(work "${BIN}/install-check")
set(prefix "${work}/prefix")
file(REMOVE_RECURSE "${work}")
file(MAKE_DIRECTORY "${work}")

# Runs a command; on failure stops with its output.
function(run what)
  execute_process(COMMAND ${ARGN}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmdline "${ARGN}")
    message(FATAL_ERROR "install check: ${what} failed (${rc})\n"
      "command: ${cmdline}\n${out}")
  endif()
  message(STATUS "${what}: ok")
  set(run_output "${out}" PARENT_SCOPE)
endfunction()

# --- what the library was built with -------------------------------------
set(cache "${BIN}/CMakeCache.txt")
if(NOT EXISTS "${cache}")
  message(FATAL_ERROR "install check: ${cache} not found; is BIN a build tree?")
endif()
file(STRINGS "${cache}" san_line REGEX "^ESC_SANITIZE:[A-Z]+=")
string(REGEX REPLACE "^ESC_SANITIZE:[A-Z]+=" "" sanitize "${san_line}")
file(STRINGS "${cache}" cc_line REGEX "^CMAKE_C_COMPILER:[A-Z]+=")
string(REGEX REPLACE "^CMAKE_C_COMPILER:[A-Z]+=" "" cc "${cc_line}")
if(cc STREQUAL "")
  set(cc cc)
endif()
set(san_flags "")
if(NOT sanitize STREQUAL "")
  set(san_flags "-fsanitize=${sanitize}")
  message(STATUS "library built with ${san_flags}: the consumer uses it too")
endif()

# --- install ---------------------------------------------------------------
run("cmake --install into ${prefix}"
  "${CMAKE_COMMAND}" --install "${BIN}" --prefix "${prefix}")

if(NOT EXISTS "${prefix}/include/esc/store.h")
  message(FATAL_ERROR "install check: ${prefix}/include/esc/store.h was not installed")
endif()
# Only public headers are installed: never an internal interface or a
# module's private header.
file(GLOB_RECURSE installed_headers RELATIVE "${prefix}/include" "${prefix}/include/*.h")
foreach(h IN LISTS installed_headers)
  if(NOT h MATCHES "^esc/[a-z_]+\\.h$")
    message(FATAL_ERROR "install check: ${prefix}/include/${h} is not a public header")
  endif()
endforeach()
foreach(want store event command projection process query metrics testkit)
  if(NOT EXISTS "${prefix}/include/esc/${want}.h")
    message(FATAL_ERROR "install check: <esc/${want}.h> was not installed")
  endif()
endforeach()
foreach(lib libesc.a libesc.so libesc_testkit.a)
  file(GLOB_RECURSE found "${prefix}/*/${lib}")
  if(found STREQUAL "")
    message(FATAL_ERROR "install check: ${lib} was not installed")
  endif()
endforeach()
file(GLOB_RECURSE pc_files "${prefix}/*/esc.pc")
list(LENGTH pc_files n)
if(NOT n EQUAL 1)
  message(FATAL_ERROR "install check: expected one esc.pc under ${prefix}, found: ${pc_files}")
endif()
get_filename_component(pc_dir "${pc_files}" DIRECTORY)
get_filename_component(libdir "${pc_dir}" DIRECTORY)
file(GLOB_RECURSE config_files "${prefix}/*/escConfig.cmake")
if(config_files STREQUAL "")
  message(FATAL_ERROR "install check: no escConfig.cmake under ${prefix}")
endif()

# Runs a built consumer, with the library dir on the loader path in case esc
# was built shared.
set(ENV{LD_LIBRARY_PATH} "${libdir}:$ENV{LD_LIBRARY_PATH}")
set(ENV{ASAN_OPTIONS} "detect_leaks=1:abort_on_error=1")
set(ENV{UBSAN_OPTIONS} "print_stacktrace=1:halt_on_error=1")

# --- 1. find_package(esc) ---------------------------------------------------
set(cbuild "${work}/consumer-build")
set(cflags "")
if(san_flags)
  set(cflags "${san_flags} -fno-omit-frame-pointer")
endif()
run("configure consumer with find_package(esc)"
  "${CMAKE_COMMAND}" -S "${SRC}/tests/install/consumer" -B "${cbuild}" -G "${GEN}"
  "-DCMAKE_PREFIX_PATH=${prefix}" "-DCMAKE_C_COMPILER=${cc}"
  -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_C_FLAGS=${cflags}"
  "-DCMAKE_EXE_LINKER_FLAGS=${san_flags}")
run("build consumer (CMake)" "${CMAKE_COMMAND}" --build "${cbuild}")
run("run consumer (CMake)" "${cbuild}/consumer")
message(STATUS "  ${run_output}")

# --- 2. pkg-config ------------------------------------------------------------
find_program(PKG_CONFIG pkg-config)
if(NOT PKG_CONFIG)
  message(FATAL_ERROR "install check: pkg-config not found")
endif()
set(ENV{PKG_CONFIG_PATH} "${pc_dir}")
run("pkg-config --cflags --libs esc" "${PKG_CONFIG}" --cflags --libs esc)
string(STRIP "${run_output}" pc_flags)
separate_arguments(pc_flags UNIX_COMMAND "${pc_flags}")
execute_process(COMMAND "${PKG_CONFIG}" --variable=includedir esc
  OUTPUT_VARIABLE pc_includedir OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT EXISTS "${pc_includedir}/esc/store.h")
  message(FATAL_ERROR "install check: esc.pc's includedir '${pc_includedir}' "
    "has no esc/store.h (esc.pc in ${pc_dir}: is its prefix computed right "
    "for this libdir?)")
endif()
set(pc_exe "${work}/consumer-pkgconfig")
set(san_args "")
if(san_flags)
  set(san_args "${san_flags}" -fno-omit-frame-pointer)
endif()
run("build consumer (pkg-config)"
  "${cc}" -std=c11 -Wall -Wextra -Wpedantic -Werror ${san_args}
  "${SRC}/tests/install/consumer/main.c" -o "${pc_exe}" ${pc_flags})
run("run consumer (pkg-config)" "${pc_exe}")
message(STATUS "  ${run_output}")

# --- 3. samples/bank against the package, both ways ------------------------
set(bbuild "${work}/bank-build")
run("configure samples/bank with find_package(esc)"
  "${CMAKE_COMMAND}" -S "${SRC}/tests/install/bank" -B "${bbuild}" -G "${GEN}"
  "-DCMAKE_PREFIX_PATH=${prefix}" "-DCMAKE_C_COMPILER=${cc}"
  -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_C_FLAGS=${cflags}"
  "-DCMAKE_EXE_LINKER_FLAGS=${san_flags}")
run("build samples/bank (CMake)" "${CMAKE_COMMAND}" --build "${bbuild}")
run("run the bank's tests (CMake)" "${bbuild}/bank_test")
run("pkg-config --cflags --libs esc-testkit" "${PKG_CONFIG}" --cflags --libs esc-testkit)
string(STRIP "${run_output}" kit_flags)
separate_arguments(kit_flags UNIX_COMMAND "${kit_flags}")
set(bank_exe "${work}/bank-test-pkgconfig")
run("build samples/bank (pkg-config)"
  "${cc}" -std=c11 -Wall -Wextra -Wpedantic -Werror ${san_args}
  -I "${SRC}/samples/bank" "${SRC}/samples/bank/bank.c"
  "${SRC}/samples/bank/bank_test.c" -o "${bank_exe}" ${kit_flags})
run("run the bank's tests (pkg-config)" "${bank_exe}")

message(STATUS "install check passed (prefix ${prefix}, libdir ${libdir})")
