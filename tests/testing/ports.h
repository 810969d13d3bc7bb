// Free loopback TCP ports for test servers.
#ifndef REDRIVE_TESTS_TESTING_PORTS_H_
#define REDRIVE_TESTS_TESTING_PORTS_H_

namespace redrive::testing {

// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read
// it back, close). Aborts the test binary if no socket can be made.
int PickFreePort();

}  // namespace redrive::testing

#endif  // REDRIVE_TESTS_TESTING_PORTS_H_
