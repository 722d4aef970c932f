// Package faulttest checks the kit under load while its database fails.
//
// The test (faulttest_test.go) starts private PostgreSQL, MariaDB and
// Redis servers of its own, in temporary directories on free ports, and
// for each runs the kit as a host would (mfa.New, httpx.New, sqlstore or
// redisstore) behind a real HTTP server. Clients send valid codes (each
// code twice, and again after every 5xx) and wrong codes to other users
// through PUT /oauth/users/mfa/verify while the test restarts the server
// (cleanly, and as a crash) or kills its connections. It then checks:
//
//   - no code is accepted twice, and no older code after a newer one;
//   - every failure answered 400 is counted in the store, and the count
//     holds no more checks than were made (it is read through the Store
//     API after the run);
//   - while the server is down every answer is a 5xx: never a 200, and
//     never a 400 for a code it could not check;
//   - a correct, unused code is never refused;
//   - every accepted step is still recorded after the restart (the
//     store's LastStep), and replaying it is refused;
//   - the kit answers 2xx again within a bounded time after the server is
//     back, with no restart of its own.
//
// It touches no shared server. It runs only when MFAKIT_FAULTS=1 (a plain
// go test skips it), and .ci/faults runs a short version:
//
//	MFAKIT_FAULTS=1 go test -v -run 'TestChecks|TestFaults' ./examples/faulttest
//
// Settings (environment):
//
//	MFAKIT_FAULTS_DURATION  load before the fault, and at least after it (default 2s);
//	                        a restarted server stays down half as long (2s to 10s)
//	MFAKIT_FAULTS_BACKENDS  comma-separated subset of postgres,mysql,redis (default all)
//	MFAKIT_FAULTS_RECOVERY  how long the kit may answer 5xx once the server is back (default 20s)
//	MFAKIT_FAULTS_SPEED     how many times faster than real time the kit's clock runs (default 5)
//	MFAKIT_FAULTS_DIR       where the servers' directories go (default a new temporary directory)
//	MFAKIT_PG_BIN           PostgreSQL's bin directory (default /usr/lib/postgresql/<newest>/bin)
//
// Redis keeps what it acknowledged across a restart only with an
// append-only file: the private Redis runs with --appendonly yes
// --appendfsync always. A Redis without persistence (or with --save
// only) forgets every failure count and every accepted step when it
// restarts, so neither "no failure count lost" nor "no code accepted
// twice" can hold across its restart; with appendfsync everysec a crash
// may lose the last second or so of writes, counts and accepted steps
// among them.
//
// TestChecks (also under MFAKIT_FAULTS=1) runs the same load on a store
// in memory with a planted bug of each kind the checks look for, and
// checks that each is reported, and nothing without one.
package faulttest
