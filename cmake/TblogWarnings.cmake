# tblog_set_warnings(<target>): the project's warning flags, per target, so
# generated code and third-party headers are not held to them.
function(tblog_set_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align
    -Woverloaded-virtual -Wimplicit-fallthrough -Wformat=2 -Wnull-dereference)
  # Clang checks the thread-safety annotations (ABSL_GUARDED_BY,
  # ABSL_EXCLUSIVE_LOCKS_REQUIRED, ...) at compile time; gcc ignores them.
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    target_compile_options(${target} PRIVATE -Wthread-safety)
  endif()
  if(TBLOG_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
