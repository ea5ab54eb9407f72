# Tests of the daemon's core (server/daemon), one file per unit.
if(TARGET tblog_daemon)
  foreach(unit worker_pool byte_budget checkpoint run run_registry service)
    if(EXISTS "${CMAKE_CURRENT_SOURCE_DIR}/daemon/${unit}_test.cc")
      tblog_add_test(${unit}_test SOURCES daemon/${unit}_test.cc LIBS tblog_daemon)
    endif()
  endforeach()
endif()
