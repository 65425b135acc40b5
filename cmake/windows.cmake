# The Windows build (docs/WINDOWS.md): the mechanism of include/fdpass_win.h (src/mech/win/),
# fdpass.exe (tools/fdpass/win/) and its tests (tests/win/), which ctest runs under Wine. Nothing
# of the Linux tree is built here: the platform seam is the folder, not #ifdefs.
add_compile_options(-Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
                    -Wno-unused-parameter -Werror=implicit-function-declaration)
if(FDPASS_WERROR)
  add_compile_options(-Werror)
endif()
# Linked statically, so that the programs run from the build tree with no DLL beside them.
add_link_options(-static)

add_library(fdpass_win STATIC src/mech/win/handle.c)
target_include_directories(fdpass_win PUBLIC ${PROJECT_SOURCE_DIR}/include)
target_link_libraries(fdpass_win PUBLIC ws2_32)

file(GLOB FDPASS_WIN_TOOL_SOURCES CONFIGURE_DEPENDS tools/fdpass/win/*.c)
add_executable(fdpass_win_tool ${FDPASS_WIN_TOOL_SOURCES})
set_target_properties(fdpass_win_tool PROPERTIES OUTPUT_NAME fdpass)
target_compile_definitions(fdpass_win_tool PRIVATE FDPASS_VERSION="${PROJECT_VERSION}")
target_link_libraries(fdpass_win_tool PRIVATE fdpass_win)

if(FDPASS_TESTS)
  enable_testing()
  # The test program finds fdpass.exe beside it.
  add_executable(test_win tests/win/test_win.c)
  set_target_properties(test_win PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR})
  set_target_properties(fdpass_win_tool PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR})
  target_include_directories(test_win PRIVATE ${PROJECT_SOURCE_DIR}/tests/win)
  target_link_libraries(test_win PRIVATE fdpass_win)
  add_dependencies(test_win fdpass_win_tool)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/win/test_win.c)
  file(STRINGS tests/win/test_win.c lines REGEX "^TEST\\([a-z0-9_]+\\)")
  foreach(line ${lines})
    string(REGEX REPLACE "^TEST\\(([a-z0-9_]+)\\).*" "\\1" name "${line}")
    add_test(NAME win.${name} COMMAND test_win ${name})
    set_tests_properties(win.${name} PROPERTIES TIMEOUT 180)
  endforeach()
endif()
