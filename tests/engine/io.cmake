tblog_add_test(tensor_view_test SOURCES engine/tensor_view_test.cc LIBS tblog_engine_io)
tblog_add_test(crc32c_test SOURCES engine/crc32c_test.cc LIBS tblog_engine_io)
tblog_add_test(record_test SOURCES engine/record_test.cc LIBS tblog_engine_io)
tblog_add_test(event_file_writer_test SOURCES engine/event_file_writer_test.cc LIBS tblog_engine_io)
