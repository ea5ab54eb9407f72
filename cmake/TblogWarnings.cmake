# tblog_set_warnings(<target>): the project's warning flags, per target, so
# generated code and third-party headers are not held to them.
function(tblog_set_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align
    -Woverloaded-virtual -Wimplicit-fallthrough -Wformat=2 -Wnull-dereference)
  if(TBLOG_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
