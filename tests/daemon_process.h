// For end-to-end tests: the real tblogd as a child process (DaemonProcess)
// and a self-removing temporary directory (TempDir). Both live in
// tests/support/daemon_process.h, shared with the load generator; this
// header keeps the tests' include path. A test that starts a daemon links
// tblog_daemon_process; one that needs only TempDir links nothing more.
#ifndef TBLOG_TESTS_DAEMON_PROCESS_H_
#define TBLOG_TESTS_DAEMON_PROCESS_H_

#include "support/daemon_process.h"

#endif  // TBLOG_TESTS_DAEMON_PROCESS_H_
