# One target per module (docs/architecture.md). A module is an OBJECT
# library esc_<name> built from <name>/src/*.c:
#   - its public header directory <name>/include is PUBLIC: users and the
#     modules above see it, and it is installed;
#   - <name>/internal (when present) is PUBLIC in the build only: the
#     interface that esc's modules above share (<esc_internal/...>), never
#     installed;
#   - <name>/src is PRIVATE: no other module can include its headers.
# DEPENDS names the modules directly below that this one uses; their
# include directories come with them, and nothing else is on the include
# path, so including a header of a module above fails to compile. The
# layer check (scripts/check-layers) says the same with a clearer message.
#
# The umbrella library esc (esc::esc) is made of every module's objects
# (esc_umbrella below), so users link one library.
#
#   esc_module(<name> [DEPENDS <module>...] [SOURCES <extra>...]
#              [PUBLIC_LINK <lib>...] [LINK <lib>...])
function(esc_module name)
  cmake_parse_arguments(M "" "" "DEPENDS;SOURCES;PUBLIC_LINK;LINK" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/src/*.c)
  set(t esc_${name})
  add_library(${t} OBJECT ${srcs} ${M_SOURCES})
  target_include_directories(${t}
    PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/internal)
    target_include_directories(${t}
      PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/internal>)
  endif()
  foreach(dep IN LISTS M_DEPENDS)
    target_link_libraries(${t} PUBLIC esc_${dep})
  endforeach()
  target_link_libraries(${t} PUBLIC ${M_PUBLIC_LINK}
    PRIVATE $<BUILD_INTERFACE:esc_warnings> ${M_LINK})
  target_compile_definitions(${t} PRIVATE ESC_BUILDING_LIBRARY)
  set_target_properties(${t} PROPERTIES C_VISIBILITY_PRESET hidden
    POSITION_INDEPENDENT_CODE ON)
  set_property(GLOBAL APPEND PROPERTY ESC_MODULES ${name})
  set_property(GLOBAL APPEND PROPERTY ESC_MODULE_LINKS ${M_PUBLIC_LINK} ${M_LINK})
  set_property(GLOBAL APPEND PROPERTY ESC_PUBLIC_LINKS ${M_PUBLIC_LINK})
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/include/esc)
    install(DIRECTORY include/esc DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  endif()
endfunction()

# The umbrella library of every module declared so far: call it after the
# last esc_module.
function(esc_umbrella)
  get_property(modules GLOBAL PROPERTY ESC_MODULES)
  get_property(links GLOBAL PROPERTY ESC_MODULE_LINKS)
  get_property(public_links GLOBAL PROPERTY ESC_PUBLIC_LINKS)
  list(REMOVE_DUPLICATES links)
  list(REMOVE_ITEM links ${public_links})
  add_library(esc STATIC)
  add_library(esc::esc ALIAS esc)
  foreach(m IN LISTS modules)
    target_sources(esc PRIVATE $<TARGET_OBJECTS:esc_${m}>)
    target_include_directories(esc PUBLIC
      $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/${m}/include>)
  endforeach()
  target_include_directories(esc PUBLIC
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  set_target_properties(esc PROPERTIES LINKER_LANGUAGE C
    VERSION ${PROJECT_VERSION} SOVERSION 0)
  target_link_libraries(esc PUBLIC ${public_links} PRIVATE ${links})

  # The same objects as a shared library, libesc.so (esc::esc_shared):
  # only the ESC_API names are exported from it.
  add_library(esc_shared SHARED)
  add_library(esc::esc_shared ALIAS esc_shared)
  foreach(m IN LISTS modules)
    target_sources(esc_shared PRIVATE $<TARGET_OBJECTS:esc_${m}>)
  endforeach()
  get_target_property(incs esc INTERFACE_INCLUDE_DIRECTORIES)
  target_include_directories(esc_shared PUBLIC ${incs})
  set_target_properties(esc_shared PROPERTIES OUTPUT_NAME esc
    LINKER_LANGUAGE C VERSION ${PROJECT_VERSION} SOVERSION 0)
  target_link_libraries(esc_shared PUBLIC ${public_links}
    PRIVATE ${links} $<BUILD_INTERFACE:esc_warnings>)
endfunction()
