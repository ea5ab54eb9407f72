# Tests of the header-only base (base/).
tblog_add_test(sync_test SOURCES base/sync_test.cc LIBS tblog_base Threads::Threads)
