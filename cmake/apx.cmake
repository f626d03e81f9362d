# Helpers that keep every part's CMakeLists short and alike.

# apx_add_library(store SRCS a.cc b.cc DEPS apx_common)  ->  static library apx_store.
function(apx_add_library name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_library(apx_${name} STATIC ${ARG_SRCS})
  target_include_directories(apx_${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(apx_${name} PUBLIC ${ARG_DEPS})
endfunction()

# apx_add_test(agg/avg_test.cc DEPS apx_agg [LABELS slow])  ->  one gtest binary, one ctest entry.
function(apx_add_test src)
  cmake_parse_arguments(ARG "" "" "DEPS;LABELS" ${ARGN})
  if(NOT APX_BUILD_TESTS)
    return()
  endif()
  get_filename_component(test_name ${src} NAME_WE)
  add_executable(${test_name} ${src})
  target_link_libraries(${test_name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main)
  add_test(NAME ${test_name} COMMAND ${test_name}
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  if(ARG_LABELS)
    set_tests_properties(${test_name} PROPERTIES LABELS "${ARG_LABELS}")
  endif()
endfunction()
