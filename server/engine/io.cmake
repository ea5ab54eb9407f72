# Owned by the I/O component: records, event files, readers.
tblog_engine_component(tblog_engine_io
  tensor_view.cc
  crc32c.cc
  record_writer.cc
  record_reader.cc
  event_file_writer.cc
  event_reader.cc
)
