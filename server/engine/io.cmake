# Owned by the I/O component: records, event files, readers.
tblog_engine_component(tblog_engine_io
  tensor_view.cc
  crc32c.cc
  record_writer.cc
  record_reader.cc
  event_file_writer.cc
  event_reader.cc
  inspect.cc
)

# tblog-inspect LOGDIR: the report of inspect.h on the command line.
add_executable(tblog-inspect inspect_main.cc)
target_link_libraries(tblog-inspect PRIVATE tblog_engine_io)
tblog_set_warnings(tblog-inspect)
install(TARGETS tblog-inspect RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
